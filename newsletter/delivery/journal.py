"""The journal: one task per worker process that group-commits intents and outcomes.

Every connection hands the journal its write-ahead intent (`sending`, awaited before DATA) and
then its outcome; the journal commits whatever has gathered in one transaction, as soon as the
previous one is done (queue.py explains why this order keeps every crash safe). How fast a
commit comes back sets how long each connection idles before DATA, so the writer matters:

- `ThreadWriter` (any engine): `queue.commit_journal` through SQLAlchemy in a worker thread.
- `PostgresWriter` (PostgreSQL with psycopg 3): the same transaction as one statement on
  psycopg's asyncio connection (db/pgsend.py), so the event loop neither blocks nor shares the
  GIL with a commit thread, and a commit is one round trip.
- `SqliteWriter` (SQLite): the same transaction as a handful of prepared statements on the
  event loop's own thread, over a connection of its own. Measured with two workers on two
  cores, a commit in a thread took 1.4 ms with one worker and 2.1 ms with two for about 3.5
  rows: SQLAlchemy's statement handling plus the thread handing the GIL back and forth with the
  event loop at every SQLite call, all while SQLite's single write lock was held. On the loop,
  the whole transaction holds the lock for a fraction of that. The write lock is taken with
  `BEGIN IMMEDIATE` and no busy handler: when the other process holds it, the journal yields to
  the event loop and tries again, so sending goes on meanwhile. The connection never
  checkpoints by itself (wal_autocheckpoint=0), so no fsync blocks the loop; a thread
  checkpoints every quarter second instead (see `SqliteWriter.checkpoint`).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine

from newsletter.db import pgsend
from newsletter.db.engine import is_sqlite, sqlite_time
from newsletter.db.models import utcnow
from newsletter.delivery import queue as q

Progress = Callable[[Mapping[str, int]], None]


Granted = Callable[[set[int]], None]  # hears the intents a commit made `sending`, at once


class Writer(Protocol):
    """Commits one group; a writer that reads the reply in a callback calls `granted` there
    (PostgresWriter), and the journal grants what is left once `commit` returns."""

    async def commit(self, issue_id: int, worker: str, intents: Sequence[int],
                     outcomes: Sequence[q.Outcome], released: Sequence[int],
                     sent_languages: Iterable[str], granted: Granted | None = None
                     ) -> set[int]: ...

    def close(self) -> None: ...


class ThreadWriter:
    """Commits through SQLAlchemy in a worker thread; works on every engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def commit(self, issue_id: int, worker: str, intents: Sequence[int],
                     outcomes: Sequence[q.Outcome], released: Sequence[int],
                     sent_languages: Iterable[str], granted: Granted | None = None
                     ) -> set[int]:
        return await asyncio.to_thread(
            q.commit_journal, self.engine, issue_id=issue_id, worker=worker,
            intents=list(intents), outcomes=outcomes, released=released,
            sent_languages=sent_languages)

    def close(self) -> None:
        pass


def journal_sql(param: str, in_ids: str) -> dict[str, str]:
    """The journal's statements, with the driver's placeholder and its way to match an id list.

    They do what `queue.commit_journal` does through SQLAlchemy (SQLite's fast writer; on
    PostgreSQL db/pgsend.journal does it in one statement); tests/delivery/test_journal_unit.py
    reads their rows back through SQLAlchemy.
    """
    p = param
    return {
        "sent": f"UPDATE deliveries SET status = 'sent', sent_at = {p}, "
                f"attempts = attempts + 1, worker = NULL, lease_until = NULL WHERE id {in_ids}",
        "other": f"UPDATE deliveries SET status = {p}, last_reply = {p}, next_attempt_at = {p}, "
                 f"worker = NULL, lease_until = NULL, attempts = attempts + {p} WHERE id = {p}",
        "release": f"UPDATE deliveries SET worker = NULL, lease_until = NULL WHERE id {in_ids} "
                   f"AND worker = {p}",
        "edition": f"UPDATE editions SET sent_at = {p} WHERE issue_id = {p} AND language = {p} "
                   "AND sent_at IS NULL",
        "intent": f"UPDATE deliveries SET status = 'sending' WHERE id {in_ids} AND worker = {p} "
                  "AND status IN ('queued', 'deferred') RETURNING id",
    }


SQLITE_SQL = journal_sql("?", "IN (SELECT value FROM json_each(?))")


def _other_rows(outcomes: Sequence[q.Outcome], stamp: Callable[[datetime], Any]) -> list[tuple]:
    """Parameters of the "other" statement for every outcome but "sent"."""
    return [(o.status, o.reply, o.retry_at and stamp(o.retry_at), _attempt(o), o.delivery_id)
            for o in outcomes if o.status != "sent"]


def _attempt(outcome: q.Outcome) -> int:
    """What an outcome adds to the row's attempts: a message put back at once (a 421) none."""
    return 0 if outcome.status == "queued" else 1


class SqliteWriter:
    """Commits with raw statements on the event loop's thread (SQLite only)."""

    checkpoint_every = 0.25  # seconds between background checkpoints
    restart_frames = 4096  # a WAL longer than this (16 MB of 4 KB pages) is restarted

    def __init__(self, path: str, lock_timeout: float = 30.0) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout=0")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        self.lock_timeout = lock_timeout
        self.checkpointing: asyncio.Task[None] | None = None
        self.checkpointed = time.monotonic()
        self.checkpointer: sqlite3.Connection | None = None  # used in one thread at a time

    async def commit(self, issue_id: int, worker: str, intents: Sequence[int],
                     outcomes: Sequence[q.Outcome], released: Sequence[int],
                     sent_languages: Iterable[str], granted: Granted | None = None
                     ) -> set[int]:
        await self._begin()
        try:
            owned = self._write(issue_id, worker, intents, outcomes, released, sent_languages)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self._maybe_checkpoint()
        return owned

    def _maybe_checkpoint(self) -> None:
        """Start a checkpoint in a thread now and then; the loop never waits for it."""
        if self.checkpointing is not None and not self.checkpointing.done():
            return
        if time.monotonic() - self.checkpointed < self.checkpoint_every:
            return
        self.checkpointed = time.monotonic()
        self.checkpointing = asyncio.ensure_future(asyncio.to_thread(self.checkpoint))

    def checkpoint(self) -> None:
        """Copy the WAL into the database; restart a WAL that other writers keep growing.

        A passive checkpoint never blocks anyone but, with two workers committing all the
        time, never catches up either, so the WAL would grow without end (about 40 MB/s at
        4,000 messages/s). Past `restart_frames` a RESTART checkpoint holds writers back for
        the few milliseconds it takes to finish, and the WAL starts again from its beginning.
        It needs the write lock, which the journals take and retry for every 0.2 ms, so it
        retries as often (SQLite's own busy handler would sleep longer and never get it).
        """
        if self.checkpointer is None:  # one connection for every checkpoint of the run
            self.checkpointer = sqlite3.connect(self.path, isolation_level=None,
                                                check_same_thread=False)
            self.checkpointer.execute("PRAGMA busy_timeout=0")
        conn = self.checkpointer
        _busy, frames, _done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        deadline = time.monotonic() + 1.0
        while frames > self.restart_frames and time.monotonic() < deadline:
            busy, frames, _done = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            if not busy:
                return
            time.sleep(0.0002)

    async def _begin(self) -> None:
        deadline = time.monotonic() + self.lock_timeout
        tries = 0
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            tries += 1
            await asyncio.sleep(0 if tries < 50 else 0.001)

    def _write(self, issue_id: int, worker: str, intents: Sequence[int],
               outcomes: Sequence[q.Outcome], released: Sequence[int],
               sent_languages: Iterable[str]) -> set[int]:
        now = sqlite_time(utcnow())
        execute = self.conn.execute
        sent = [o.delivery_id for o in outcomes if o.status == "sent"]
        if sent:
            execute(SQLITE_SQL["sent"], (now, json.dumps(sent)))
        rest = _other_rows(outcomes, sqlite_time)
        if rest:
            self.conn.executemany(SQLITE_SQL["other"], rest)
        if released:
            execute(SQLITE_SQL["release"], (json.dumps(list(released)), worker))
        for lang in sent_languages:
            execute(SQLITE_SQL["edition"], (now, issue_id, lang))
        if not intents:
            return set()
        rows = execute(SQLITE_SQL["intent"], (json.dumps(list(intents)), worker))
        return {i for (i,) in rows}

    def close(self) -> None:
        self.conn.close()
        if self.checkpointing is not None and not self.checkpointing.done():
            self.checkpointing.cancel()
        elif self.checkpointer is not None:  # no checkpoint thread is using it
            self.checkpointer.close()


class PostgresWriter:
    """Commits on psycopg's asyncio connection, one statement each (db/pgsend.py): no thread,
    the loop never blocks."""

    def __init__(self, conninfo: str) -> None:
        self.lane = pgsend.Lane(conninfo)

    async def commit(self, issue_id: int, worker: str, intents: Sequence[int],
                     outcomes: Sequence[q.Outcome], released: Sequence[int],
                     sent_languages: Iterable[str], granted: Granted | None = None
                     ) -> set[int]:
        """`granted` hears the intents in the socket's reader callback, a turn of the loop
        before this returns: the connections waiting on them write their DATA one hop
        sooner (db/pgsend.run)."""
        rows = [(o.delivery_id, o.status, o.reply, o.retry_at, _attempt(o)) for o in outcomes]
        return await pgsend.journal(self.lane, issue_id=issue_id, worker=worker,
                                    intents=intents, outcomes=rows, released=released,
                                    languages=list(sent_languages), now=utcnow(),
                                    granted=granted)

    def close(self) -> None:
        self.lane.close()


def make_writer(engine: Engine) -> Writer:
    """The fastest writer the engine allows."""
    database = engine.url.database
    if is_sqlite(engine) and database and database != ":memory:":
        return SqliteWriter(database)
    conninfo = pgsend.conninfo(engine)
    if conninfo is not None:
        return PostgresWriter(conninfo)
    return ThreadWriter(engine)


class Journal:
    """Group commit: gathers intents and outcomes from all connections, one transaction each."""

    def __init__(self, engine: Engine, issue_id: int, lease: float, worker: str,
                 progress: Progress) -> None:
        self.engine, self.issue_id, self.lease = engine, issue_id, lease
        self.worker, self.progress = worker, progress
        self.writer = make_writer(engine)
        self.intents: list[tuple[int, asyncio.Future[bool]]] = []
        self.outcomes: list[q.Outcome] = []
        self.committing = 0  # outcomes taken for the commit under way, not durable yet
        self.settled = 0  # commits that put rows back or settled them; the feeder compares
        self.released: list[int] = []
        self.wake = asyncio.Event()
        self.closing = False
        self.marked: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.renewed = time.monotonic()

    def intend(self, delivery_id: int) -> asyncio.Future[bool]:
        """Future resolving True once `sending` is committed (False: the claim was lost)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.intents.append((delivery_id, future))
        self.wake.set()
        return future

    @property
    def pending(self) -> bool:
        """Outcomes recorded but not committed yet: the run is not over while there are any."""
        return bool(self.outcomes) or self.committing > 0

    def record(self, outcome: q.Outcome) -> None:
        self.outcomes.append(outcome)
        self.wake.set()

    def release(self, ids: list[int]) -> None:
        self.released.extend(ids)
        self.wake.set()

    async def run(self) -> None:
        try:
            while True:
                if not (self.intents or self.outcomes or self.released):
                    if self.closing:
                        return
                    await self.wake.wait()
                    self.wake.clear()
                    continue
                # Let the connections woken in the same turn of the loop add their intents
                # first: about a quarter fewer commits, each costing far more than one yield.
                await asyncio.sleep(0)
                await self._commit_gathered()
                await self._renew()
        finally:
            self.writer.close()

    async def _commit_gathered(self) -> None:
        intents, self.intents = self.intents, []
        outcomes, self.outcomes = self.outcomes, []
        released, self.released = self.released, []
        langs = {o.language for o in outcomes if o.status == "sent"} - self.marked
        self.committing = len(outcomes)
        try:
            owned = await self.writer.commit(self.issue_id, self.worker,
                                             [i for i, _ in intents], outcomes, released, langs,
                                             lambda owned: _grant(intents, owned))
        except Exception as exc:
            for _, future in intents:
                if not future.done():
                    future.set_exception(exc)
            raise
        finally:
            self.committing = 0
        self.marked |= langs
        if outcomes or released:
            self.settled += 1
        _grant(intents, owned)  # those a writer did not grant early
        if outcomes:
            delta = Counter(o.status for o in outcomes)
            self.counts.update(delta)
            self.progress(delta)

    async def _renew(self) -> None:
        if time.monotonic() - self.renewed > self.lease / 3:
            self.renewed = time.monotonic()
            await asyncio.to_thread(q.renew, self.engine, self.worker, self.lease)

    def close(self) -> None:
        self.closing = True
        self.wake.set()


def _grant(intents: Sequence[tuple[int, asyncio.Future[bool]]], owned: set[int]) -> None:
    """Resolve each intent's future: True if its row is now `sending` for this worker."""
    for delivery_id, future in intents:
        if not future.done():
            future.set_result(delivery_id in owned)
