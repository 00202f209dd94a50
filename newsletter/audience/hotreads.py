"""The preferences page's two reads on their fast paths, for the web app.

`load_preferences` and `membership` (audience/preferences.py) run through SQLAlchemy; on every
page and one-click POST that cost more than the database itself. These classes run the same
statements (built once there) compiled once to the driver's SQL: `HotReads` on SQLite, on a
DB-API connection per thread, and `AsyncHotReads` on PostgreSQL, on psycopg's asyncio
connections. They return the same values, so the pages cannot tell which one answered.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import Any, cast

import psycopg
from sqlalchemy import ClauseElement, Engine
from sqlalchemy.sql.compiler import SQLCompiler

from newsletter.audience.preferences import (
    CHOICES,
    MEMBERSHIP,
    SUBSCRIBER_ROW,
    Membership,
    PreferencesView,
    membership_of,
    view_of,
)


class _Compiled:
    """A statement compiled once to the driver's own SQL and parameter style."""

    def __init__(self, statement: ClauseElement, engine: Engine) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=engine.dialect))
        self.sql = str(compiled)
        self.order = compiled.positiontup if compiled.positional else None

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        return values if self.order is None else tuple(values[name] for name in self.order)


class HotReads:
    """The two reads behind every preferences page and one-click POST, on SQLite.

    They run on a DB-API connection held per thread (taken once from the engine's pool, so it
    has the engine's pragmas), with SQL compiled once: SQLAlchemy's execution layer cost
    55 µs a read against 7 µs for SQLite itself. Autocommit reads: no snapshot is held open.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.choices = _Compiled(CHOICES, engine)
        self.subscriber = _Compiled(SUBSCRIBER_ROW, engine)
        self.membership_sql = _Compiled(MEMBERSHIP, engine)
        self.local = threading.local()
        self.held: list[Any] = []
        self.lock = threading.Lock()

    def _rows(self, query: _Compiled, values: Mapping[str, Any]) -> list[Any]:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            pooled = self.engine.raw_connection()
            with self.lock:
                self.held.append(pooled)
            conn = self.local.conn = cast(Any, pooled.dbapi_connection)  # without the proxy
        return conn.execute(query.sql, query.params(values)).fetchall()

    def preferences(self, subscriber_id: int, list_id: int) -> PreferencesView:
        """Same as load_preferences."""
        values = {"sid": subscriber_id, "lid": list_id}
        rows = self._rows(self.choices, values)
        alone = None
        if not rows:
            found = self._rows(self.subscriber, values)
            alone = found[0] if found else None
        return view_of(subscriber_id, rows, alone)

    def membership(self, subscriber_id: int, list_id: int) -> Membership | None:
        """Same as membership."""
        rows = self._rows(self.membership_sql, {"sid": subscriber_id, "lid": list_id})
        return membership_of(rows[0]) if rows else None

    def close(self) -> None:
        """Give the held connections back to the pool."""
        with self.lock:
            held, self.held = self.held, []
        self.local = threading.local()
        for conn in held:
            conn.close()


class AsyncHotReads:
    """The same two reads on PostgreSQL with psycopg's asyncio connections: no thread hop.

    Through SQLAlchemy in the thread pool a preferences page read cost a hop to a worker
    thread, the execution layer and a GIL shared with the event loop (1,400 pages/s). Here a
    few autocommit connections, opened on first use, take the reads in turn; psycopg queues
    concurrent queries on one connection. A connection the server dropped is replaced and the
    read tried once more.
    """

    def __init__(self, engine: Engine, size: int = 4) -> None:
        self.conninfo = engine.url.set(drivername="postgresql").render_as_string(False)
        self.choices = _Compiled(CHOICES, engine)
        self.subscriber = _Compiled(SUBSCRIBER_ROW, engine)
        self.membership_sql = _Compiled(MEMBERSHIP, engine)
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
            self.turn = slot = (self.turn + 1) % self.size
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

    async def _rows(self, query: _Compiled, values: Mapping[str, Any]) -> list[Any]:
        slot, conn = await self._connection()
        try:
            cursor = await conn.execute(query.sql, query.params(values))
        except psycopg.OperationalError:
            if not conn.closed:
                raise
            # The server dropped the connection (a restart, an idle timeout): one new try on a
            # fresh one, so a read never fails for a connection the server already gave up.
            _slot, conn = await self._connection(slot)
            cursor = await conn.execute(query.sql, query.params(values))
        return await cursor.fetchall()

    async def preferences(self, subscriber_id: int, list_id: int) -> PreferencesView:
        """Same as load_preferences."""
        values = {"sid": subscriber_id, "lid": list_id}
        rows = await self._rows(self.choices, values)
        alone = None
        if not rows:
            found = await self._rows(self.subscriber, values)
            alone = found[0] if found else None
        return view_of(subscriber_id, rows, alone)

    async def membership(self, subscriber_id: int, list_id: int) -> Membership | None:
        """Same as membership."""
        rows = await self._rows(self.membership_sql, {"sid": subscriber_id, "lid": list_id})
        return membership_of(rows[0]) if rows else None

    async def close(self) -> None:
        conns, self.conns = self.conns, [None] * self.size
        for conn in conns:
            if conn is not None:
                await conn.close()
