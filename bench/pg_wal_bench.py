"""What one sent message costs the PostgreSQL server, in deterministic counts (issue 16).

    cd /tmp && PYTHONPATH=/path/to/checkout /path/to/.venv/bin/python \\
        /path/to/bench/pg_wal_bench.py [--subscribers 20000] [--connections 16] \\
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

The code measured is the `newsletter` that Python imports (PYTHONPATH picks the checkout, so
one copy of this script compares two branches). It seeds a scratch database as
bench/send_bench.py does, runs VACUUM ANALYZE and a CHECKPOINT, then one whole
`newsletter send SLUG --yes --json` to `smtp-sink`, and prints per message sent:

- the updates of `deliveries` and the share that were HOT (pg_stat_user_tables): a HOT update
  adds no index entry, a non-HOT one adds one to every index whose predicate the new row
  meets;
- WAL bytes, records and full-page images (pg_stat_wal, cluster-wide: run it on a cluster
  nobody else writes to), and per statement when pg_stat_statements is loaded;
- blocks of `deliveries` and of each of its indexes read or hit (pg_statio_user_*);
- CPU of the backends serving the database (send_bench.ServerCpu; this one depends on the
  machine's load, the counts above do not);
- the table's and its indexes' bytes per row right after the send.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import newsletter  # before the bench modules, which put their own checkout first on the path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import send_bench  # noqa: E402
import wal_bench  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402

COUNTERS = """
SELECT 'upd', n_tup_upd FROM pg_stat_user_tables WHERE relname = 'deliveries'
UNION ALL SELECT 'hot', n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'deliveries'
UNION ALL SELECT 'heap blocks', heap_blks_hit + heap_blks_read FROM pg_statio_user_tables
    WHERE relname = 'deliveries'
UNION ALL SELECT 'index ' || indexrelname, idx_blks_hit + idx_blks_read
    FROM pg_statio_user_indexes WHERE relname = 'deliveries'
UNION ALL SELECT 'wal bytes', wal_bytes::bigint FROM pg_stat_wal
UNION ALL SELECT 'wal records', wal_records FROM pg_stat_wal
UNION ALL SELECT 'wal fpi', wal_fpi FROM pg_stat_wal
"""

STATEMENTS = """
SELECT calls, wal_bytes::bigint, shared_blks_hit + shared_blks_read, shared_blks_dirtied,
    left(regexp_replace(query, '\\s+', ' ', 'g'), 90)
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = current_database() ORDER BY wal_bytes DESC LIMIT 8
"""


def admin(engine: Engine, sql: str) -> Any:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        result = conn.execute(text(sql))
        return result.all() if result.returns_rows else []


def counters(engine: Engine) -> dict[str, int]:
    """The counters once every backend that served the send has reported them: a backend
    reports at exit, a moment after its client left, so read until two readings agree."""
    last: dict[str, int] = {}
    for _ in range(50):
        time.sleep(0.2)
        now = {k: int(v) for k, v in admin(engine, COUNTERS)}  # a new session, a new snapshot
        if now == last:
            return now
        last = now
    return last


def sizes(engine: Engine) -> tuple[int, int, int]:
    rows, table, indexes = admin(engine, "SELECT count(*), pg_relation_size('deliveries'), "
                                 "pg_indexes_size('deliveries') FROM deliveries")[0]
    return int(rows), int(table), int(indexes)


def statements(engine: Engine, reset: bool) -> list[Any]:
    try:
        admin(engine, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        return admin(engine, "SELECT pg_stat_statements_reset()" if reset else STATEMENTS)
    except Exception:  # not in shared_preload_libraries: no per-statement figures
        return []


def report(before: dict[str, int], after: dict[str, int], sent: int, cpu: float) -> None:
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    upd, hot = delta.pop("upd"), delta.pop("hot")
    print(f"updates of deliveries: {upd / sent:.2f} per message, HOT {hot:,} of {upd:,} "
          f"({100 * hot / max(upd, 1):.1f} %)")
    for key, value in delta.items():
        print(f"{key}: {value / sent:,.1f} per message")
    print(f"backends: {cpu / sent * 1e6:.0f} µs CPU per message (depends on the load)")


def send(ws: Path, database: str) -> tuple[int, float, float]:
    """Sent messages, wall seconds and backend CPU seconds of one whole send."""
    server = send_bench.ServerCpu(database)
    started = time.perf_counter()
    done = subprocess.run(send_bench.newsletter(ws, "send", "bench", "--yes", "--json"),
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    server.close()
    if done.returncode != 0:
        print(done.stdout, done.stderr)
        raise SystemExit(1)
    out = done.stdout
    return json.loads(out[out.index("{"):])["sent"], wall, server.total()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=20_000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    print(f"code: {Path(newsletter.__file__).parent.parent}")
    with wal_bench.seeded(args.admin_url, args.subscribers, args.connections) as (ws, engine):
        statements(engine, reset=True)
        before = counters(engine)
        sent, wall, cpu = send(ws, str(engine.url.database))
        after = counters(engine)
        print(f"send of {sent:,} messages, {sent / wall:,.0f} msg/s (whole command)")
        report(before, after, sent, cpu)
        rows, table, indexes = sizes(engine)
        print(f"deliveries after the send: table {table / rows:.0f} bytes per row, "
              f"indexes {indexes / rows:.0f}")
        for calls, wal, blocks, dirtied, query in statements(engine, reset=False):
            print(f"  {calls:>6} calls {wal / sent:>7,.0f} WAL B/msg {blocks / sent:>5.1f} "
                  f"blocks/msg {dirtied / sent:>5.2f} dirtied/msg  {query}")


if __name__ == "__main__":
    main()
