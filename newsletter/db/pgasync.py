"""PostgreSQL on the web app's event loop: psycopg's asyncio connections, and the statements of
many concurrent requests run as one.

Under load the web app's hot routes (the preferences page, the one-click unsubscribe) run the
same few statements for dozens of requests at a time. One statement per request cost, each
time, a round trip, a wake-up of a server process on the two cores the app shares with it, and
psycopg's own work per query (bench/RESULTS.md). Here `Batches` gathers the requests that arrive
while a statement is under way and runs them as the next one: `batched` turns a statement keyed
by integer bind parameters into one over arrays of keys, and `LEAVE_MANY` writes many one-click
unsubscribes, their requests' removal and their audit events in one statement. The first
request of a quiet moment goes at once, so an idle app adds no wait.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

import psycopg
from sqlalchemy import ClauseElement, Engine
from sqlalchemy.sql.compiler import SQLCompiler

from newsletter.db.groupcommit import cancel_all, settle

K = TypeVar("K")
R = TypeVar("R")
Outcome = tuple[Any, BaseException | None]  # (result, None) or (None, the error)
RunMany = Callable[[list[K]], Awaitable[list[Outcome]]]

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def has_async_driver(engine: Engine) -> bool:
    """True when the engine is PostgreSQL through psycopg, whose asyncio connections this uses."""
    return engine.url.drivername == "postgresql+psycopg"


class AsyncConnections:
    """A few autocommit psycopg connections on the running event loop, opened on first use.

    A statement takes an idle connection, else the next in turn (psycopg queues concurrent
    statements on one connection). A connection the server dropped is replaced and the
    statement tried once more. Autocommit: no transaction is ever left open (it would hold
    locks and block VACUUM).
    """

    def __init__(self, engine: Engine, size: int = 4) -> None:
        self.conninfo = engine.url.set(drivername="postgresql").render_as_string(False)
        self.size = size
        self.conns: list[Any] = [None] * size
        self.turn = 0
        self.opening: asyncio.Lock | None = None  # made on the event loop, at first use
        self.loop: asyncio.AbstractEventLoop | None = None

    async def _connection(self, slot: int | None = None) -> tuple[int, Any]:
        """(slot, open connection): the next slot in turn, or the given one, opened if needed."""
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # connections belong to the loop that opened them
            self.conns, self.opening, self.loop = [None] * self.size, None, loop
        if slot is None:
            slot = self._idle_slot()
        conn = self.conns[slot]
        if conn is not None and not conn.closed:
            return slot, conn
        if self.opening is None:
            self.opening = asyncio.Lock()
        async with self.opening:  # one connect per slot, however many requests arrive at once
            conn = self.conns[slot]
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
                self.conns[slot] = conn
        return slot, conn

    def _idle_slot(self) -> int:
        """The first slot from the next in turn whose connection runs nothing (psycopg queues
        a statement behind the one under way on the same connection), else the next in turn."""
        self.turn = (self.turn + 1) % self.size
        for step in range(self.size):
            slot = (self.turn + step) % self.size
            conn = self.conns[slot]
            if conn is None or not conn.lock.locked():
                return slot
        return self.turn

    async def rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[Any]:
        """The rows of one statement (committed by the time they are returned, if it writes)."""
        slot, conn = await self._connection()
        try:
            cursor = await conn.execute(sql, params)
        except psycopg.OperationalError:
            if not conn.closed:
                raise
            # The server dropped the connection (a restart, an idle timeout): one new try on a
            # fresh one, so a request never fails for a connection the server already gave up.
            _slot, conn = await self._connection(slot)
            cursor = await conn.execute(sql, params)
        return await cursor.fetchall() if cursor.description is not None else []

    async def close(self) -> None:
        conns, self.conns = self.conns, [None] * self.size
        for conn in conns:
            if conn is not None:
                await conn.close()


class Batches(Generic[K, R]):
    """Concurrent calls of one kind, run together: `run(key)` joins the batch that is waiting.

    `run_many(keys)` does the work for a batch and returns one (result, error) per key. At most
    `lanes` batches are under way at once; a lane that finishes takes whatever arrived
    meanwhile, so a busy app makes one statement for many requests and an idle one starts each
    at once.
    """

    def __init__(self, run_many: RunMany[K], lanes: int = 2, max_batch: int = 200) -> None:
        self.run_many = run_many
        self.lanes = lanes
        self.max_batch = max_batch  # keeps the arrays and the result short
        self.pending: list[tuple[K, asyncio.Future[R]]] = []
        self.busy = 0
        self.tasks: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak ones

    async def run(self, key: K) -> R:
        """The result for `key`, once the batch it joined is done (its error, raised here)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self.pending.append((key, future))
        if self.busy < self.lanes:
            self.busy += 1
            task = loop.create_task(self._lane())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await future

    async def _lane(self) -> None:
        try:
            while self.pending:
                batch = self.pending[: self.max_batch]
                del self.pending[: self.max_batch]
                try:
                    outcomes = await self.run_many([key for key, _ in batch])
                except asyncio.CancelledError:  # the event loop is closing: so is every call
                    cancel_all(batch + self.pending)
                    self.pending = []
                    raise
                except Exception as exc:  # the whole batch failed: each caller gets the error
                    outcomes = [(None, exc)] * len(batch)
                settle(batch, outcomes)
        finally:
            self.busy -= 1


def batched(statement: ClauseElement, engine: Engine, keys: Sequence[str]) -> str:
    """`statement`, whose only bind parameters are the integers named `keys`, for many keys at
    once: the parameters become arrays of the same names, and each row comes first with the
    1-based position of its keys in them. Rows of one position keep the statement's order (a
    LATERAL subquery runs once per position, in order)."""
    compiled = cast(SQLCompiler, statement.compile(dialect=engine.dialect))
    inner = str(compiled)
    unknown = set(PLACEHOLDER.findall(inner)) - set(keys)
    if unknown:
        raise ValueError(f"batched: bind parameters other than the keys: {sorted(unknown)}")
    for key in keys:
        inner = inner.replace(f"%({key})s", f"k.{key}")
    arrays = ", ".join(f"%({key})s::int[]" for key in keys)
    return (f"SELECT k.n, q.* FROM unnest({arrays}) WITH ORDINALITY AS k({', '.join(keys)}, n) "
            f"CROSS JOIN LATERAL ({inner}) AS q")


def by_position(rows: list[Any], count: int) -> list[list[Any]]:
    """The rows of a `batched` statement, grouped per position (without the position)."""
    groups: list[list[Any]] = [[] for _ in range(count)]
    for row in rows:
        groups[row[0] - 1].append(row[1:])
    return groups


# Many one-click unsubscribes in one statement, so one commit: each (subscriber, list) pair
# that was not unsubscribed yet is, its pending request (if any) goes, and the first request
# of each pair that changed gets its audit event, in the order the requests came. What
# subscriptions.leave_many does in three statements. `found` is a `batched` read over the same
# arrays, which sees the rows as they were before the change (every part of one statement
# sees the same snapshot); each of its rows comes back with whether its position changed.
LEAVE_MANY = """
WITH found AS ({read}), asked AS (
    SELECT * FROM unnest(%(sid)s::int[], %(lid)s::int[], %(ip)s::text[], %(user_agent)s::text[],
                         %(source)s::text[], %(consent_text)s::text[], %(data)s::text[])
        WITH ORDINALITY AS a(sid, lid, ip, user_agent, source, consent_text, data, n)
), left_list AS (
    UPDATE subscriptions s
    SET status = 'unsubscribed', unsubscribed_at = %(now)s, updated_at = %(now)s
    FROM (SELECT DISTINCT sid, lid FROM asked) d
    WHERE s.subscriber_id = d.sid AND s.list_id = d.lid AND s.status <> 'unsubscribed'
    RETURNING s.subscriber_id, s.list_id
), forgotten AS (
    DELETE FROM subscription_requests r USING left_list l
    WHERE r.subscriber_id = l.subscriber_id AND r.list_id = l.list_id
), first AS (
    SELECT DISTINCT ON (a.sid, a.lid) a.*
    FROM asked a JOIN left_list l ON l.subscriber_id = a.sid AND l.list_id = a.lid
    ORDER BY a.sid, a.lid, a.n
), recorded AS (
    INSERT INTO events (kind, subscriber_id, list_id, created_at, ip, user_agent, source,
                        consent_text, data)
    SELECT %(kind)s, sid, lid, %(now)s, ip, user_agent, source, consent_text, data::json
    FROM first ORDER BY n
)
SELECT f.*, f.n IN (SELECT n FROM first) FROM found f
"""


def leave_many_sql(read: ClauseElement, engine: Engine) -> str:
    """LEAVE_MANY with `read` (keyed by sid and lid, as for `batched`) as what it returns."""
    return LEAVE_MANY.replace("{read}", batched(read, engine, ("sid", "lid")))


async def leave_many(
    conns: AsyncConnections, sql: str, events: Sequence[Mapping[str, Any]], now: datetime
) -> list[tuple[bool, list[Any]]]:
    """Write the unsubscribes whose audit events (audit.event_row's) are given, with a
    `leave_many_sql` statement; for each, whether it changed anything (a repeat, also within
    the call, does not) and the rows its read gave before. Committed when it returns."""
    columns: dict[str, list[Any]] = {
        "sid": [], "lid": [], "ip": [], "user_agent": [], "source": [], "consent_text": [],
        "data": [],
    }
    for event in events:
        columns["sid"].append(event["subscriber_id"])
        columns["lid"].append(event["list_id"])
        columns["data"].append(json.dumps(event["data"]))
        for name in ("ip", "user_agent", "source", "consent_text"):
            columns[name].append(event[name])
    kinds = {event["kind"] for event in events}
    if len(kinds) != 1:
        raise ValueError("leave_many: every event must be of one kind")
    naive = now.astimezone(UTC).replace(tzinfo=None)  # stored as naive UTC, as UTCDateTime does
    rows = await conns.rows(sql, {**columns, "now": naive, "kind": kinds.pop()})
    return [(any(row[-1] for row in group), [row[:-1] for row in group])
            for group in by_position(rows, len(events))]
