"""The journal's writers record exactly what the queue's SQLAlchemy transaction records.

On SQLite the sender commits through `SqliteWriter` (raw statements on the event loop); these
tests read its rows back through SQLAlchemy, so a format slip (a date SQLAlchemy cannot parse,
a status in the wrong column) fails here rather than in `issue status` or the archive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import select

from newsletter.db.models import Delivery, Edition, utcnow
from newsletter.delivery import queue as q
from newsletter.delivery.journal import PostgresWriter, SqliteWriter, ThreadWriter, make_writer
from tests.conftest import address_key
from tests.delivery.test_queue import _enqueued


def _rows(engine):
    with engine.connect() as conn:
        return {r.id: r for r in conn.execute(select(Delivery))}


@pytest.mark.parametrize("kind", ["fast", "thread"])
def test_the_writer_records_intents_and_every_kind_of_outcome(kind, workspace, db_url, services):
    settings, engine, issue_id = _enqueued(workspace, db_url, n=6)
    writer = make_writer(engine) if kind == "fast" else ThreadWriter(engine)
    fast = SqliteWriter if db_url.startswith("sqlite") else PostgresWriter
    assert isinstance(writer, fast if kind == "fast" else ThreadWriter)
    me = "h:1:me"
    ids = [c.delivery_id for c in q.claim(engine, issue_id, me, 10, 60, address_key(db_url))]
    started = utcnow()
    retry_at = (started + timedelta(minutes=5)).replace(microsecond=123456)
    outcomes = [
        q.Outcome(ids[0], "sent", None, "en"),
        q.Outcome(ids[1], "sent", None, "fr"),
        q.Outcome(ids[2], "deferred", "451 4.3.0 try later", "en", retry_at),
        q.Outcome(ids[3], "failed", "550 5.1.1 no such user", "fr"),
        q.Outcome(ids[4], "queued", "421 closing", "en"),
    ]

    async def journal():
        owned = await writer.commit(issue_id, me, ids[:5], [], [], ())
        assert owned == set(ids[:5])
        assert {r.status for i, r in _rows(engine).items() if i in owned} == {"sending"}
        await writer.commit(issue_id, me, [], outcomes, [ids[5]], {"en"})
        writer.close()

    asyncio.run(journal())
    rows = _rows(engine)
    assert [rows[i].status for i in ids] == ["sent", "sent", "deferred", "failed", "queued",
                                              "queued"]
    assert rows[ids[0]].sent_at >= started and rows[ids[0]].sent_at.tzinfo is not None
    assert rows[ids[2]].next_attempt_at == retry_at
    assert rows[ids[3]].last_reply == "550 5.1.1 no such user"
    assert [rows[i].attempts for i in ids] == [1, 1, 1, 1, 0, 0]  # a requeue is no attempt
    assert all(rows[i].worker is None and rows[i].lease_until is None for i in ids)
    with engine.connect() as conn:
        sent_at = dict(conn.execute(select(Edition.language, Edition.sent_at)).all())
    assert sent_at["en"] >= started and sent_at["fr"] is None
    engine.dispose()


def test_the_writer_refuses_intents_for_rows_it_no_longer_holds(workspace, db_url, services):
    settings, engine, issue_id = _enqueued(workspace, db_url, n=2)
    ids = [c.delivery_id for c in q.claim(engine, issue_id, "h:1:a", 10, 60, address_key(db_url))]
    writer = make_writer(engine)

    async def commit_and_close():  # PostgresWriter's connection belongs to this loop
        try:
            return await writer.commit(issue_id, "h:1:b", ids, [], [], ())
        finally:
            writer.close()

    assert asyncio.run(commit_and_close()) == set()
    assert {r.status for r in _rows(engine).values()} == {"queued"}
    engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_writer_waits_for_the_other_process_lock_and_then_commits(
        workspace, db_url, services):
    settings, engine, issue_id = _enqueued(workspace, db_url, n=2)
    ids = [c.delivery_id for c in q.claim(engine, issue_id, "h:1:a", 10, 60, address_key(db_url))]
    writer = make_writer(engine)
    other = sqlite3.connect(engine.url.database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another worker holds the write lock

    async def commit_while_locked():
        pending = asyncio.ensure_future(writer.commit(issue_id, "h:1:a", ids, [], [], ()))
        await asyncio.sleep(0.05)
        assert not pending.done()  # still waiting for the lock, without blocking the loop
        other.execute("COMMIT")
        return await pending

    assert asyncio.run(commit_while_locked()) == set(ids)
    writer.close()
    other.close()
    engine.dispose()


def _churn(writer, issue_id, ids, path, rounds=300):
    """The writer and 'another worker' take turns changing the same rows; WAL size after."""
    other = sqlite3.connect(path, isolation_level=None)

    async def run():
        for _ in range(rounds):
            other.execute("UPDATE deliveries SET worker = 'h:1:a'")
            await writer.commit(issue_id, "h:1:a", [], [], ids, ())
            await asyncio.sleep(0.001)  # the SMTP work between two commits
        if writer.checkpointing is not None:
            await writer.checkpointing

    asyncio.run(run())
    other.close()
    writer.close()
    return os.path.getsize(path + "-wal")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_writer_keeps_the_wal_small_while_another_process_writes(
        workspace, db_url, services):
    settings, engine, issue_id = _enqueued(workspace, db_url, n=4)
    ids = [c.delivery_id for c in q.claim(engine, issue_id, "h:1:a", 10, 60, address_key(db_url))]
    path = engine.url.database
    unchecked = make_writer(engine)
    unchecked.checkpoint_every = float("inf")
    grown = _churn(unchecked, issue_id, ids, path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    checked = make_writer(engine)
    checked.checkpoint_every, checked.restart_frames = 0.0, 20
    kept = _churn(checked, issue_id, ids, path)
    # 600 commits with no checkpoint: at least one 4 KB page each, and the WAL only grows.
    assert grown > 600 * 4096 / 2
    assert kept < grown / 2  # checkpoints kept it small (typically under a tenth)
    engine.dispose()
