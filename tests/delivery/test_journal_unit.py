"""The journal in-process: each writer's transaction, and the group-commit task around it.

Every writer (SQLAlchemy in a thread, raw SQLite on the loop, psycopg's asyncio connection)
must leave the same rows as `queue.commit_journal`; these tests run each on both engines and
read the rows back through SQLAlchemy. They are also the mutation-testing selection for
journal.py, so they call it directly: no SMTP, no subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, select, update

from newsletter.db import pgsend, sender
from newsletter.db.engine import sqlite_time
from newsletter.db.models import utcnow
from newsletter.db.tables import EDITIONS
from newsletter.delivery import editions
from newsletter.delivery import journal as j
from newsletter.delivery import queue as q
from tests.delivery.queue_fixtures import edition, near
from tests.delivery.sender_fixtures import seed


def _writer(kind, engine):
    if kind == "thread":
        return j.ThreadWriter(engine)
    writer = j.make_writer(engine)
    assert isinstance(writer, j.SqliteWriter if engine.dialect.name == "sqlite"
                      else j.PostgresWriter)
    return writer


def _commit(writer, *batches):
    """Run writer.commit for each (issue, worker, intents, outcomes, released, langs)."""
    async def run():
        try:
            return [await writer.commit(*batch) for batch in batches]
        finally:
            writer.close()
    return asyncio.run(run())


def _claimed(db, n, worker="h:1:me", slug="nov"):
    if slug == "nov":
        seed(db.workspace, ["en"] * n)
    issue_id = db.issue(slug)
    db.enqueue(issue_id)
    db.claim(issue_id, worker)
    return issue_id, db.ids(issue_id)


KINDS = ["fast", "thread"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_outcome_is_recorded_with_its_attempt_reply_and_retry_time(kind, db):
    issue_id, ids = _claimed(db, 6)
    db.set(ids, attempts=2, last_reply="old")
    paris = timezone(timedelta(hours=1))
    retry = datetime(2030, 1, 2, 4, 5, 6, 250000, tzinfo=paris)
    started = utcnow()
    outcomes = [q.Outcome(ids[0], "sent", None, "en"),
                q.Outcome(ids[1], "deferred", "451 later", "en", retry),
                q.Outcome(ids[2], "failed", "550 no", "en"),
                q.Outcome(ids[3], "queued", "421 bye", "en"),
                q.Outcome(ids[4], "unknown", "lost", "en"),
                q.Outcome(ids[5], "sent", None, "en")]
    assert _commit(_writer(kind, db.engine), (issue_id, "h:1:me", [], outcomes, [], ())) == [
        set()]
    rows = db.rows()
    assert [(rows[i].status, rows[i].attempts, rows[i].last_reply) for i in ids] == [
        ("sent", 3, "old"), ("deferred", 3, "451 later"), ("failed", 3, "550 no"),
        ("queued", 2, "421 bye"), ("unknown", 3, "lost"), ("sent", 3, "old")]
    assert all(rows[i].worker is None and rows[i].lease_until is None for i in ids)
    assert rows[ids[1]].next_attempt_at == retry.astimezone(UTC)
    assert rows[ids[2]].next_attempt_at is None
    assert near(rows[ids[0]].sent_at, started) and near(rows[ids[5]].sent_at, started)
    assert rows[ids[1]].sent_at is None


@pytest.mark.parametrize("kind", KINDS)
def test_intents_are_granted_only_for_rows_still_leased_to_the_worker_and_open(kind, db):
    issue_id, ids = _claimed(db, 6)
    db.set([ids[1]], status="deferred")
    db.set([ids[2]], status="sent")
    db.set([ids[3]], worker="h:1:thief")
    db.set([ids[4]], status="sending")
    owned, nothing = _commit(_writer(kind, db.engine),
                             (issue_id, "h:1:me", ids[:5], [], [], ()),  # ids[5]: held only
                             (issue_id, "h:1:me", [], [], [], ()))
    assert (owned, nothing) == ({ids[0], ids[1]}, set())
    rows = db.rows()
    assert [rows[i].status for i in ids] == ["sending", "sending", "sent", "queued", "sending",
                                              "queued"]


@pytest.mark.parametrize("kind", KINDS)
def test_released_claims_return_to_the_queue_but_only_the_workers_own(kind, db):
    issue_id, ids = _claimed(db, 3)
    db.set([ids[2]], worker="h:1:other")
    _commit(_writer(kind, db.engine), (issue_id, "h:1:me", [], [], [ids[0], ids[2]], ()))
    rows = db.rows()
    assert [(rows[i].worker, rows[i].lease_until is None) for i in ids] == [
        (None, True), ("h:1:me", False), ("h:1:other", False)]


@pytest.mark.parametrize("kind", KINDS)
def test_the_first_send_of_a_language_stamps_its_edition_once(kind, db):
    seed(db.workspace, [])
    issue_id, other = db.issue(), db.issue("dec")
    earlier = utcnow() - timedelta(days=2)
    with sender.write_tx(db.engine) as conn, conn.begin():
        editions.store_editions(conn, issue_id,
                                [edition(lang, lang) for lang in ("en", "fr", "es")])
        editions.store_editions(conn, other, [edition("en", "x")])
        conn.execute(update(EDITIONS).where(EDITIONS.c.language == "fr")
                     .values(sent_at=earlier))
    started = utcnow()
    _commit(_writer(kind, db.engine), (issue_id, "w", [], [], [], ["en", "fr"]))
    with db.engine.connect() as conn:
        rows = conn.execute(EDITIONS.select().order_by(EDITIONS.c.id)).all()
    assert near(rows[0].sent_at, started) and rows[0].sent_at.tzinfo is not None
    assert [r.sent_at for r in rows[1:]] == [earlier, None, None]


@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_commit_changes_nothing_and_the_writer_goes_on(kind, db):
    issue_id, ids = _claimed(db, 2)
    writer = _writer(kind, db.engine)
    bad = [q.Outcome(ids[0], "sent", None, "en"), q.Outcome(object(), "failed", "x", "en")]

    async def run():
        with pytest.raises(Exception):  # noqa: B017 (each driver has its own error)
            await writer.commit(issue_id, "h:1:me", [ids[1]], bad, [], ())
        assert {r.status for r in db.rows().values()} == {"queued"}
        return await writer.commit(issue_id, "h:1:me", [ids[1]], bad[:1], [], ())

    try:
        assert asyncio.run(run()) == {ids[1]}
    finally:
        writer.close()
    assert [db.rows()[i].status for i in ids] == ["sent", "sending"]


@pytest.mark.sqlite_only  # PostgreSQL's journal is one statement: tests/delivery/test_pgsend.py
def test_each_journal_statement_does_what_its_name_says(db):
    issue_id, ids = _claimed(db, 5)
    db.set([ids[2]], worker="h:1:other")
    db.set([ids[3]], status="sent")
    with sender.write_tx(db.engine) as conn, conn.begin():
        editions.store_editions(conn, issue_id, [edition("en", "a"), edition("fr", "b")])
    conn = sqlite3.connect(db.engine.url.database, isolation_level=None)
    sql, id_list, stamp = j.SQLITE_SQL, json.dumps, sqlite_time
    now, retry = utcnow(), utcnow() + timedelta(minutes=5)
    try:
        owned = conn.execute(sql["intent"], (id_list(ids[:4]), "h:1:me")).fetchall()
        conn.execute(sql["sent"], (stamp(now), id_list([ids[0]])))
        conn.execute(sql["other"], ("deferred", "451 later", stamp(retry), 1, ids[1]))
        conn.execute(sql["release"], (id_list([ids[2], ids[4]]), "h:1:me"))
        conn.execute(sql["edition"], (stamp(now), issue_id, "fr"))
    finally:
        conn.close()
    assert sorted(i for (i,) in owned) == ids[:2]
    rows = db.rows()
    assert [(rows[i].status, rows[i].attempts, rows[i].worker) for i in ids] == [
        ("sent", 1, None), ("deferred", 1, None), ("queued", 0, "h:1:other"),
        ("sent", 0, "h:1:me"), ("queued", 0, None)]
    assert near(rows[ids[0]].sent_at, now) and rows[ids[1]].next_attempt_at == retry
    with db.engine.connect() as c:
        sent_at = dict(c.execute(select(EDITIONS.c.language, EDITIONS.c.sent_at)).all())
    assert sent_at["en"] is None and near(sent_at["fr"], now)


@pytest.fixture
def tokyo_local_time(monkeypatch):
    """The machine's local time zone is not UTC."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_naive_utc_is_what_postgresql_timestamp_columns_hold(tokyo_local_time):
    aware = datetime(2030, 1, 2, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=-5)))
    assert pgsend.naive_utc(aware) == datetime(2030, 1, 2, 9, 5, 6, 7)
    assert pgsend.naive_utc(datetime(2030, 1, 2)) == datetime(2030, 1, 2)  # already UTC


def test_make_writer_picks_the_fastest_writer_the_engine_allows(tmp_path):
    sqlite_file = j.make_writer(create_engine(f"sqlite:///{tmp_path / 'x.db'}"))
    assert isinstance(sqlite_file, j.SqliteWriter)
    assert sqlite_file.path == str(tmp_path / "x.db")
    sqlite_file.close()
    assert isinstance(j.make_writer(create_engine("sqlite://")), j.ThreadWriter)
    assert isinstance(j.make_writer(create_engine("sqlite:///:memory:")), j.ThreadWriter)
    pg = j.make_writer(create_engine("postgresql+psycopg://nl:s3cret@db.example:5433/news"))
    assert isinstance(pg, j.PostgresWriter)
    assert pg.lane.conninfo == "postgresql://nl:s3cret@db.example:5433/news"
    pg.close()  # never connected: nothing to close


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_postgresql_writer_reconnects_after_its_connection_closed(db):
    issue_id, ids = _claimed(db, 2)
    writer = _writer("fast", db.engine)

    async def run():
        first = await writer.commit(issue_id, "h:1:me", ids[:1], [], [], ())
        await writer.lane.conn.close()
        second = await writer.commit(issue_id, "h:1:me", ids[1:], [], [], ())
        writer.close()
        return first, second, writer.lane.conn.closed

    assert asyncio.run(run()) == ({ids[0]}, {ids[1]}, True)


@pytest.mark.sqlite_only
def test_the_sqlite_writer_gives_up_on_a_lock_held_past_its_timeout(db):
    issue_id, ids = _claimed(db, 1)
    writer = j.SqliteWriter(db.engine.url.database, lock_timeout=0.2)
    other = sqlite3.connect(db.engine.url.database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _commit(writer, (issue_id, "h:1:me", ids, [], [], ()))
    other.execute("ROLLBACK")
    other.close()
    assert {r.status for r in db.rows().values()} == {"queued"}


@pytest.mark.sqlite_only
def test_the_sqlite_writer_commits_durably_without_blocking_on_fsync(db):
    issue_id, ids = _claimed(db, 1)
    writer = j.SqliteWriter(db.engine.url.database)
    pragmas = [writer.conn.execute(f"PRAGMA {p}").fetchone()[0]
               for p in ("busy_timeout", "synchronous", "wal_autocheckpoint")]
    assert pragmas == [0, 1, 0]  # no busy handler, NORMAL, checkpoints in a thread
    assert _commit(writer, (issue_id, "h:1:me", ids, [], [], ())) == [set(ids)]
    with pytest.raises(sqlite3.ProgrammingError):
        writer.conn.execute("SELECT 1")  # closed


@pytest.mark.sqlite_only
def test_the_sqlite_writer_checkpoints_in_a_thread_now_and_then(db):
    issue_id, ids = _claimed(db, 1)
    writer = j.SqliteWriter(db.engine.url.database)
    writer.checkpoint_every = 3600.0

    async def run():
        await writer.commit(issue_id, "h:1:me", [], [], ids, ())
        assert writer.checkpointing is None  # not due yet
        writer.checkpointed -= 3600.5
        await writer.commit(issue_id, "h:1:me", [], [], ids, ())
        first = writer.checkpointing
        assert first is not None
        await writer.commit(issue_id, "h:1:me", [], [], ids, ())
        assert writer.checkpointing is first  # one at a time, and not due again
        await first
        checkpointer = writer.checkpointer
        writer.close()
        return checkpointer

    checkpointer = asyncio.run(run())
    with pytest.raises(sqlite3.ProgrammingError):
        checkpointer.execute("SELECT 1")  # closed with the writer


@pytest.mark.sqlite_only
def test_a_checkpoint_copies_the_wal_into_the_database_file(db, tmp_path):
    issue_id, ids = _claimed(db, 2)
    path = db.engine.url.database
    db.engine.dispose()  # the claims are in the database file now
    writer = j.SqliteWriter(path)
    writer.checkpoint_every = float("inf")
    asyncio.run(writer.commit(issue_id, "h:1:me", [], [], ids, ()))  # in the WAL only
    writer.restart_frames = 0  # and restart it
    writer.checkpoint()
    shutil.copy(path, tmp_path / "copy.db")  # the database file alone, while still open
    writer.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "copy.db")) as copy:
        assert copy.execute("SELECT worker FROM deliveries").fetchall() == [(None,), (None,)]


# ---------------------------------------------------------------- the group-commit task


class Recording:
    """A real writer that also keeps what each commit was asked to do, and whether the
    journal counted its outcomes as pending meanwhile."""

    def __init__(self, journal):
        self.journal, self.writer = journal, journal.writer
        self.calls, self.pending_during = [], []

    async def commit(self, *args):
        self.calls.append(args)
        if args[3]:
            self.pending_during.append(self.journal.pending)
        return await self.writer.commit(*args)

    def close(self):
        self.calls.append("closed")
        self.writer.close()


def _journal(db, issue_id, lease=60.0):
    progress = []
    journal = j.Journal(db.engine, issue_id, lease, "h:1:me", progress.append)
    journal.writer = Recording(journal)
    return journal, progress


async def _until(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the journal did not commit in time"
        await asyncio.sleep(0.01)


def test_the_journal_grants_intents_commits_outcomes_and_reports_progress(db):
    issue_id, ids = _claimed(db, 6)
    db.set([ids[5]], worker="h:1:thief")
    journal, progress = _journal(db, issue_id)
    assert not journal.pending

    async def run():
        task = asyncio.create_task(journal.run())
        granted = await asyncio.wait_for(asyncio.gather(*(journal.intend(i) for i in ids)), 10)
        journal.record(q.Outcome(ids[0], "sent", None, "en"))
        journal.record(q.Outcome(ids[1], "sent", None, "fr"))
        journal.record(q.Outcome(ids[2], "failed", "550 no", "en"))
        assert journal.pending  # recorded, not durable yet
        await _until(lambda: not journal.pending)
        journal.record(q.Outcome(ids[3], "sent", None, "en"))  # en is stamped already
        await _until(lambda: not journal.pending)
        journal.record(q.Outcome(ids[4], "sent", None, "en"))
        await _until(lambda: not journal.pending)
        journal.close()
        await asyncio.wait_for(task, 10)
        return granted

    assert asyncio.run(run()) == [True] * 5 + [False]
    assert journal.counts == Counter(sent=4, failed=1)
    assert progress == [Counter(sent=2, failed=1), Counter(sent=1), Counter(sent=1)]
    writer = journal.writer
    assert writer.pending_during == [True, True, True]  # durable only once committed
    assert writer.calls[-1] == "closed"
    assert [set(c[5]) for c in writer.calls[:-1] if c[3]] == [{"en", "fr"}, set(), set()]
    assert {c[:2] for c in writer.calls[:-1]} == {(issue_id, "h:1:me")}
    rows = db.rows()
    assert [rows[i].status for i in ids] == ["sent", "sent", "failed", "sent", "sent", "queued"]


def test_a_failed_commit_fails_the_waiting_intents_and_stops_the_journal(db):
    issue_id, ids = _claimed(db, 1)
    journal, _ = _journal(db, issue_id)
    journal.record(q.Outcome(object(), "failed", "x", "en"))

    async def run():
        intent = journal.intend(ids[0])
        with pytest.raises(Exception) as raised:  # noqa: B017 (the driver's error)
            await journal.run()
        assert not journal.pending
        with pytest.raises(type(raised.value)) as failed:
            await asyncio.wait_for(intent, 10)
        assert failed.value is raised.value

    asyncio.run(run())
    assert journal.writer.calls[-1] == "closed"
    assert db.rows()[ids[0]].status == "queued"


def test_the_journal_renews_the_workers_leases_every_third_of_a_lease(db):
    issue_id, ids = _claimed(db, 2)
    journal, _ = _journal(db, issue_id, lease=30.0)
    short = utcnow() + timedelta(seconds=1)
    db.set(ids, lease_until=short)

    async def run():
        task = asyncio.create_task(journal.run())
        journal.renewed = time.monotonic() - 9  # under a third of the lease ago
        await journal.intend(ids[0])
        await asyncio.sleep(0.1)  # a renewal would follow the commit
        kept = db.rows()[ids[1]].lease_until
        journal.renewed -= 2  # now over a third
        await journal.intend(ids[1])
        await _until(lambda: db.rows()[ids[0]].lease_until != short)  # renewed
        db.set(ids, lease_until=short)
        journal.record(q.Outcome(ids[1], "sent", None, "en"))  # not due again yet
        journal.close()
        await task
        return kept

    assert asyncio.run(run()) == short
    assert db.rows()[ids[0]].lease_until == short
    assert journal.renewed > time.monotonic() - 5


def test_the_journal_waits_for_work_and_ends_once_closed_and_drained(db):
    issue_id, ids = _claimed(db, 2)
    journal, _ = _journal(db, issue_id)

    async def run():
        task = asyncio.create_task(journal.run())
        await asyncio.sleep(0.05)
        assert not task.done() and journal.writer.calls == []  # idle: nothing to commit
        journal.release([ids[1]])
        await _until(lambda: journal.writer.calls)  # a release alone wakes it
        journal.record(q.Outcome(ids[0], "sent", None, "en"))
        journal.close()
        await asyncio.wait_for(task, 10)

    asyncio.run(run())
    rows = db.rows()
    assert (rows[ids[0]].status, rows[ids[1]].worker) == ("sent", None)
    assert journal.writer.calls[-1] == "closed"
