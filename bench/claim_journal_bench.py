"""CPU of the sender's claims and journal commits alone, on PostgreSQL, without SMTP.

    .venv/bin/python bench/claim_journal_bench.py [--subscribers 20000] [--per-commit 8]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Seeds subscribers and enqueues an issue (`send --detach`, as bench/send_bench.py does), then,
in this process, claims every row in batches of 500 and records them as a send does: each
journal commit carries the next `--per-commit` intents and the outcomes of the previous ones
(a 20k send on 16 connections committed about 8 messages at a time). Prints this process's
CPU per message (time.process_time: claims, commits, the event loop) and the CPU of the
PostgreSQL backends serving the database (/proc, see send_bench.ServerCpu). It runs whatever
`newsletter` it imports: with PYTHONPATH set to another tree it measures that tree's code
(`queue.claim` in a thread where `queue.claim_fast` does not exist).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import send_bench as b  # noqa: E402

from newsletter.db import sender  # noqa: E402
from newsletter.delivery import journal  # noqa: E402
from newsletter.delivery import queue as q  # noqa: E402


async def drain(engine, issue_id: int, per_commit: int) -> int:  # type: ignore[no-untyped-def]
    writer = journal.make_writer(engine)
    fast = getattr(q, "claim_fast", None)
    lane = None
    if fast is not None:
        from newsletter.db import pgsend
        lane = pgsend.Lane(pgsend.conninfo(engine))  # type: ignore[arg-type]
    worker, sent = "bench:1:w", 0
    try:
        while True:
            if lane is not None:
                rows = await fast(lane, issue_id, worker, 500, 300.0, "k")
            else:
                rows = await asyncio.to_thread(q.claim, engine, issue_id, worker, 500, 300.0,
                                               "k")
            if not rows:
                return sent
            ids = [r.delivery_id for r in rows]
            before: list[int] = []
            for i in range(0, len(ids) + per_commit, per_commit):
                chunk = ids[i:i + per_commit]
                outcomes = [q.Outcome(x, "sent", None, "en") for x in before]
                await writer.commit(issue_id, worker, chunk, outcomes, [], ())
                sent += len(before)
                before = chunk
    finally:
        writer.close()
        if lane is not None:
            lane.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=20_000)
    ap.add_argument("--per-commit", type=int, default=8)
    ap.add_argument("--admin-url", default=b.ADMIN_URL)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nl-cj-"))
    db_url, name = b.database("postgresql", tmp, args.admin_url)
    assert name is not None
    try:
        ws = tmp / "ws"
        b.write_workspace(ws, db_url, b.free_port(), 16)
        b.seed(db_url, args.subscribers)
        subprocess.run(b.newsletter(ws, "send", "bench", "--yes", "--detach"), check=True,
                       capture_output=True)
        engine = sender.sender_engine(db_url, "k")
        load = os.getloadavg()[0]
        server = b.ServerCpu(name)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sent = asyncio.run(drain(engine, 1, args.per_commit))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        server.close()
        engine.dispose()
        print(f"{'claim_fast' if hasattr(q, 'claim_fast') else 'claim in a thread'}: {sent} "
              f"recorded in {wall:.1f}s (load {load:.1f}): this process {cpu / sent * 1e6:.0f}"
              f" µs CPU/msg, PostgreSQL backends {server.total() / sent * 1e6:.0f} µs CPU/msg")
    finally:
        b.drop_database(name, args.admin_url)


if __name__ == "__main__":
    main()
