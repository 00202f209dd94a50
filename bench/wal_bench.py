"""WAL bytes per delivered message and table bytes per delivery row, on PostgreSQL (issue 14).

    .venv/bin/python bench/wal_bench.py [--subscribers 20000] [--connections 16]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--waldump DIR]

Seeds a scratch database as bench/send_bench.py does, then, to `smtp-sink`:

1. reads pg_current_wal_lsn(), runs the whole `newsletter send SLUG --yes --json` (plan,
   enqueue, claims, intents, outcomes, final status), reads it again: the WAL written, per
   message. Run right after a CHECKPOINT, so every page the send touches pays its first
   full-page image once, as it does once per checkpoint interval in a long send.
2. measures pg_total_relation_size of `deliveries` (table, TOAST and indexes) per row, right
   after the send (with the dead versions its updates left) and after VACUUM FULL (compact).
3. moves the issue's sent_at 200 days back and measures the WAL and time of
   `newsletter maintenance --roll-up-after 180d` (the retention of docs/operations.md).

WAL is counted for the whole cluster: run it on a PostgreSQL nobody else writes to (the
figures in bench/RESULTS.md come from a private cluster started for the purpose). With
--waldump (the cluster's pg_wal folder, readable by you), `pg_waldump --stats` of the send's
range says which records the bytes went to.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import claim_explain  # noqa: E402
import send_bench  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402

from newsletter.db.engine import make_engine  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def lsn(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT pg_current_wal_lsn()")).scalar_one())


def wal_between(engine: Engine, start: str, end: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_wal_lsn_diff(:b, :a)"),
                                {"a": start, "b": end}).scalar_one())


def admin(engine: Engine, sql: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(sql))


def sizes(engine: Engine) -> dict[str, float]:
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT count(*), pg_relation_size('deliveries'), pg_indexes_size('deliveries'), "
            "pg_total_relation_size('deliveries') FROM deliveries")).one()
    rows, table, indexes, total = (int(v) for v in row)
    return {"rows": rows, "table": table / rows, "indexes": indexes / rows,
            "total": total / rows}


def waldump_stats(wal_dir: str, start: str, end: str) -> str:
    done = subprocess.run([str(PG_BIN / "pg_waldump"), "--stats", "-p", wal_dir, "-s", start,
                           "-e", end], capture_output=True, text=True)
    return done.stdout or done.stderr


def run(cmd: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout, done.stderr)
        raise SystemExit(1)
    return time.perf_counter() - started, done.stdout


@contextmanager
def seeded(admin_url: str, subscribers: int, connections: int) -> Iterator[tuple[Path, Engine]]:
    """A scratch database of `subscribers` confirmed readers, vacuumed and checkpointed, and a
    workspace with the issue `bench` sending to `smtp-sink`; all gone afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="nl-wal-"))
    ws = tmp / "ws"
    url, name = claim_explain.scratch_database(admin_url)
    port = send_bench.free_port()
    send_bench.write_workspace(ws, url, port, connections)
    sink = subprocess.Popen([send_bench.SMTP_SINK, "-u", "nobody", f"127.0.0.1:{port}", "1000"])
    engine = make_engine(url)
    try:
        send_bench.seed(url, subscribers)
        admin(engine, "VACUUM ANALYZE")
        admin(engine, "CHECKPOINT")
        yield ws, engine
    finally:
        engine.dispose()
        sink.terminate()
        sink.wait()
        claim_explain.drop_database(admin_url, name)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=20_000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--waldump", metavar="DIR", help="the cluster's pg_wal folder")
    args = ap.parse_args()
    with seeded(args.admin_url, args.subscribers, args.connections) as (ws, engine):
        start = lsn(engine)
        wall, out = run(send_bench.newsletter(ws, "send", "bench", "--yes", "--json"))
        end = lsn(engine)
        sent = json.loads(out[out.index("{"):])["sent"]
        wal = wal_between(engine, start, end)
        print(f"send of {sent:,} messages: {wal / 1e6:.1f} MB of WAL, {wal / sent:,.0f} bytes "
              f"per message; {sent / wall:,.0f} msg/s ({wall:.1f} s, whole command)")
        if args.waldump:
            print(waldump_stats(args.waldump, start, end))
        after = sizes(engine)
        admin(engine, "VACUUM FULL deliveries")
        compact = sizes(engine)
        for label, s in (("right after the send", after), ("after VACUUM FULL", compact)):
            print(f"deliveries {label}: {s['total']:.0f} bytes per row (table {s['table']:.0f}, "
                  f"indexes {s['indexes']:.0f}), {s['rows']:,} rows")
        with engine.begin() as conn:
            conn.execute(text("UPDATE issues SET sent_at = now() - interval '200 days'"))
        admin(engine, "CHECKPOINT")
        start = lsn(engine)
        wall, out = run(send_bench.newsletter(ws, "maintenance", "--roll-up-after", "180d"))
        wal = wal_between(engine, start, lsn(engine))
        print(f"roll-up of that issue: {wall:.2f} s (whole command), {wal / 1e6:.1f} MB of WAL, "
              f"{wal / sent:,.0f} bytes per row deleted; {out.strip().splitlines()[-1]}")


if __name__ == "__main__":
    main()
