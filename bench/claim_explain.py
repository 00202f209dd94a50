"""The claim query's cost on PostgreSQL with a million queued deliveries (issue 14).

    .venv/bin/python bench/claim_explain.py [--rows 1000000] [--batch 200]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Creates a scratch database, migrates it, and fills it with INSERT ... SELECT generate_series:
N confirmed subscribers of one list (1 % of them suppressed) and a sent issue of N rows, as a
database that has mailed before holds. This month's issue is then enqueued by the code's own
`delivery.queue.enqueue` (timed). Then, with 0 %, 50 % and 99 % of it already sent (the lowest
ids first, as a send goes):

1. runs `delivery.queue.claim` once for real, capturing the SQL it sends (the statements are
   the code's, compiled by SQLAlchemy for psycopg, never retyped here), and gives the rows back;
2. runs EXPLAIN (ANALYZE, BUFFERS) of each captured statement (the claim's UPDATE ... WHERE id
   IN (SELECT ... FOR UPDATE SKIP LOCKED) and the read of the claimed rows) in a transaction
   that is rolled back, and prints the plan, its time and the indexes it used;
3. times 20 real claims of a batch each, and prints the claim rate in rows per second.

It does so twice per state: right after the rows changed (dead index entries, as in the middle
of a send) and after VACUUM ANALYZE (once autovacuum has passed). A last state has 30 % of the
rows deferred for an hour (a provider greylisting), which every claim must pass by. The
database is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, event, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from newsletter.audience.language import ListLanguages  # noqa: E402
from newsletter.db.engine import make_engine  # noqa: E402
from newsletter.db.migrate import upgrade  # noqa: E402
from newsletter.db.models import utcnow  # noqa: E402
from newsletter.db.tables import SUPPRESSIONS  # noqa: E402
from newsletter.delivery import queue  # noqa: E402
from newsletter.keyring import address_hash, read_address_key  # noqa: E402

WORKER = "explain-bench"


def scratch_database(admin_url: str) -> tuple[str, str]:
    name = f"nl_claim_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), name


def drop_database(admin_url: str, name: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


FILL = [
    "INSERT INTO lists (id, slug, name, default_language, languages, opt_in, public, "
    "description, created_at) VALUES (1, 'news', 'News', 'en', '[\"en\",\"fr\",\"es\"]', "
    "'double', true, '', now())",
    "INSERT INTO subscribers (id, email, name, language, attributes, created_at, updated_at) "
    "SELECT g, 'reader' || g || '@example.org', 'Reader ' || g, "
    "(ARRAY['en','fr','es'])[1 + g % 3], '{}', now(), now() FROM generate_series(1, :n) g",
    "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, confirmed_at, "
    "updated_at) SELECT g, 1, 'confirmed', now(), now(), now() FROM generate_series(1, :n) g",
    "INSERT INTO issues (id, slug, list_id, status, created_at, started_at, sent_at, data) "
    "VALUES (1, 'last-month', 1, 'sent', now(), now(), now(), '{}'), "
    "(2, 'this-month', 1, 'sending', now(), now(), NULL, '{}')",
    "INSERT INTO deliveries (issue_id, subscriber_id, list_id, language, status, attempts, "
    "created_at, sent_at) SELECT 1, g, 1, (ARRAY['en','fr','es'])[1 + g % 3], 'sent', 1, "
    "now(), now() FROM generate_series(1, :n) g",
]


def fill(engine: Engine, n: int, key: str) -> float:
    """Everything but this month's deliveries, with 1 % of the addresses suppressed."""
    started = time.perf_counter()
    with engine.begin() as conn:
        for sql in FILL:
            conn.execute(text(sql), {"n": n})
        conn.execute(text("SELECT setval('subscribers_id_seq', :n)"), {"n": n})
        conn.execute(insert(SUPPRESSIONS), [
            {"email_hash": address_hash(f"reader{g}@example.org", key), "reason": "hard-bounce",
             "detail": "", "created_at": utcnow()} for g in range(1, n + 1, 100)])
    vacuum(engine)
    return time.perf_counter() - started


def enqueue(engine: Engine, key: str) -> tuple[int, float]:
    """This month's deliveries through the code's own enqueue (one INSERT ... SELECT that
    hashes every address in SQL to leave the suppressed out), timed with its commit."""
    languages = ListLanguages(offered=("en", "fr", "es"), default="en")
    started = time.perf_counter()
    with engine.begin() as conn:
        added = queue.enqueue(conn, engine, issue_id=2, list_id=1, languages=languages,
                              address_key=key, mapping={"en": "en", "fr": "fr", "es": "es"})
    elapsed = time.perf_counter() - started
    vacuum(engine)
    return added, elapsed


def vacuum(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def issue_rows(engine: Engine) -> tuple[int, int]:
    """(first id, count) of this month's deliveries."""
    with engine.connect() as conn:
        first, count = conn.execute(text(
            "SELECT min(id), count(*) FROM deliveries WHERE issue_id = 2")).one()
    return int(first), int(count)


def set_sent(engine: Engine, fraction: float) -> None:
    """The first `fraction` of issue 2's rows sent, the rest queued and free."""
    first, n = issue_rows(engine)
    cut = first - 1 + int(n * fraction)
    with engine.begin() as conn:
        conn.execute(text("UPDATE deliveries SET status = 'sent', attempts = 1, sent_at = now(),"
                          " worker = NULL, lease_until = NULL WHERE issue_id = 2 AND id <= :cut "
                          "AND status <> 'sent'"), {"cut": cut})
        conn.execute(text("UPDATE deliveries SET status = 'queued', attempts = 0, sent_at = "
                          "NULL, worker = NULL, lease_until = NULL WHERE issue_id = 2 AND id > "
                          ":cut AND (status <> 'queued' OR worker IS NOT NULL)"), {"cut": cut})


def defer_some(engine: Engine, fraction: float) -> None:
    """`fraction` of issue 2's rows, just after the half sent, deferred for an hour (as when a
    mailbox provider greylists), so every claim must pass them by."""
    first, n = issue_rows(engine)
    low = first - 1 + int(n * 0.5)
    with engine.begin() as conn:
        conn.execute(text("UPDATE deliveries SET status = 'deferred', attempts = 1, "
                          "next_attempt_at = now() + interval '1 hour' WHERE issue_id = 2 AND "
                          "id > :low AND id <= :high"),
                     {"low": low, "high": low + int(n * fraction)})


def release(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE deliveries SET worker = NULL, lease_until = NULL, status = "
                          "'queued' WHERE worker = :w"), {"w": WORKER})


def capture_claim(engine: Engine, batch: int, key: str) -> list[tuple[str, Any]]:
    """The statements one real claim sends, with their parameters (its rows released after)."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        if "deliveries" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        got = queue.claim(engine, 2, WORKER, batch, 300.0, key)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(got) == batch, f"claimed {len(got)} of {batch}"
    release(engine)
    return seen


def explain(engine: Engine, statement: str, parameters: Any) -> dict[str, Any]:
    with engine.connect() as conn, conn.begin() as tx:
        raw = conn.exec_driver_sql(
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", parameters).scalar_one()
        tx.rollback()
    plan = raw if isinstance(raw, list) else json.loads(raw)
    return plan[0]


def explain_text(engine: Engine, statement: str, parameters: Any) -> str:
    with engine.connect() as conn, conn.begin() as tx:
        rows = conn.exec_driver_sql(
            f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).scalars().all()
        tx.rollback()
    return "\n".join(rows)


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out += nodes(child)
    return out


def summary(result: dict[str, Any]) -> dict[str, Any]:
    all_nodes = nodes(result["Plan"])
    return {
        "ms": result["Execution Time"],
        "planning_ms": result["Planning Time"],
        "indexes": sorted({n["Index Name"] for n in all_nodes if "Index Name" in n}),
        "seq_scans": sorted({n["Relation Name"] for n in all_nodes
                             if n["Node Type"] == "Seq Scan"}),
        "shared_hit": result["Plan"].get("Shared Hit Blocks", 0),
        "shared_read": result["Plan"].get("Shared Read Blocks", 0),
    }


def claim_rate(engine: Engine, batch: int, key: str, runs: int = 20) -> tuple[float, float]:
    """Median ms per real claim of `batch` rows, and rows claimed per second (one claimer)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        got = queue.claim(engine, 2, WORKER, batch, 300.0, key)
        times.append(time.perf_counter() - started)
        assert len(got) == batch
    release(engine)
    median = statistics.median(times)
    return median * 1000, batch / median


def statement_name(statement: str, parameters: Any) -> str:
    """What a captured statement of the claim does: it leases the due deferred rows, then the
    queued ones (two ranges of the claim index), then reads the rows it leased."""
    if statement.lstrip().upper().startswith("UPDATE"):
        rows = "due deferred" if "deferred" in str(parameters) else "queued"
        return f"claim UPDATE of the {rows} rows (SELECT ... FOR UPDATE SKIP LOCKED inside)"
    return "read of the claimed rows (join subscribers, subscriptions)"


def measure(engine: Engine, label: str, batch: int, key: str, show_plans: bool) -> None:
    statements = capture_claim(engine, batch, key)
    ms, rate = claim_rate(engine, batch, key)
    print(f"\n### {label}: queue.claim of {batch} rows: median {ms:.1f} ms, "
          f"{rate:,.0f} rows/s for one claimer")
    for statement, parameters in statements:
        name = statement_name(statement, parameters)
        facts = summary(explain(engine, statement, parameters))
        print(f"- {name}: {facts['ms']:.2f} ms (planning {facts['planning_ms']:.2f} ms), "
              f"indexes {', '.join(facts['indexes']) or 'none'}, seq scans "
              f"{', '.join(facts['seq_scans']) or 'none'}, buffers hit {facts['shared_hit']} "
              f"read {facts['shared_read']}")
        if show_plans:
            print(re.sub(r"^", "    ", explain_text(engine, statement, parameters), flags=re.M))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=200, help="[smtp] batch_size (default 200)")
    ap.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--quiet-plans", action="store_true", help="figures only, no plan text")
    ap.add_argument("--synchronous-commit", choices=("on", "off"), default="on",
                    help="the scratch database's synchronous_commit (default on, as shipped)")
    args = ap.parse_args()
    url, name = scratch_database(args.admin_url)
    admin = create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = '
                       f'{args.synchronous_commit}'))
    admin.dispose()
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            key = read_address_key(conn)
        print(f"filled {args.rows:,} subscribers (1 % suppressed) and {args.rows:,} deliveries "
              f"of a sent issue in {fill(engine, args.rows, key):.1f}s")
        added, took = enqueue(engine, key)
        print(f"queue.enqueue of this month's issue: {added:,} deliveries in {took:.1f}s "
              f"({added / took:,.0f} rows/s, one INSERT ... SELECT and its commit)")
        with engine.connect() as conn:
            print(conn.execute(text("SELECT version()")).scalar_one())
            size = conn.execute(text(
                "SELECT pg_size_pretty(pg_total_relation_size('deliveries'))")).scalar_one()
            print(f"deliveries: {size} with its indexes")
        for fraction in (0.0, 0.5, 0.99):
            set_sent(engine, fraction)
            label = f"{fraction:.0%} sent"
            measure(engine, f"{label}, right after the change (no vacuum)", args.batch, key,
                    show_plans=False)
            vacuum(engine)
            measure(engine, f"{label}, after VACUUM ANALYZE", args.batch, key,
                    show_plans=not args.quiet_plans)
        set_sent(engine, 0.5)
        defer_some(engine, 0.3)
        vacuum(engine)
        measure(engine, "50% sent, 30% deferred for an hour, 20% queued, after VACUUM ANALYZE",
                args.batch, key, show_plans=not args.quiet_plans)
    finally:
        engine.dispose()
        drop_database(args.admin_url, name)


if __name__ == "__main__":
    main()
