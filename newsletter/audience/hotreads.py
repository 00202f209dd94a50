"""The preferences page's two reads on their fast paths, for the web app.

`load_preferences` and `membership` (audience/preferences.py) run through SQLAlchemy; on every
page and one-click POST that cost more than the database itself. These classes run the same
statements (built once there) compiled once to the driver's SQL: `HotReads` on SQLite, on a
DB-API connection per thread, and `AsyncHotReads` on PostgreSQL, on psycopg's asyncio
connections, where the reads of concurrent requests go in one statement and a one-click's read
and unsubscribe are one statement too (db/pgasync.py). They return the same values, so the
pages cannot tell which one answered.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import JSON, ClauseElement, Engine, Select, Text
from sqlalchemy import cast as sql_cast
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
from newsletter.audience.subscriptions import Leave, leave_many_at_once
from newsletter.db.groupcommit import commit_each_on_failure
from newsletter.db.pgasync import (
    AsyncConnections,
    Batches,
    Outcome,
    batched,
    by_position,
    leave_many_sql,
)


def json_as_text(statement: Select[Any]) -> Select[Any]:
    """`statement` with its JSON columns read as their text, as a raw SQLite cursor gives them:
    psycopg would parse the same few lists' JSON on every row, and text rows can be looked up
    in the caches of preferences.view_of and membership_of."""
    return statement.with_only_columns(
        *(sql_cast(column, Text).label(column.name) if isinstance(column.type, JSON) else column
          for column in statement.selected_columns),
        maintain_column_froms=False,
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
    """The same two reads on PostgreSQL, on psycopg's asyncio connections: no thread hop, and
    the reads of concurrent requests in one statement.

    Through SQLAlchemy in the thread pool a preferences page read cost a hop to a worker
    thread, the execution layer and a GIL shared with the event loop (1,400 pages/s); one
    statement per request on asyncio connections, a round trip and a wake-up of a server
    process each (0.35 of a bare route). Here the reads that arrive while one is under way
    go together as the next statement (db/pgasync.py's `batched`, two lanes at most per
    read), over `size` autocommit connections opened on first use.
    """

    def __init__(self, engine: Engine, size: int = 4, write_lanes: int = 2) -> None:
        self.conns = AsyncConnections(engine, size)
        self.size = self.conns.size
        self.subscriber = _Compiled(SUBSCRIBER_ROW, engine)
        self.choices_sql = batched(json_as_text(CHOICES), engine, ("sid", "lid"))
        self.membership_sql = batched(json_as_text(MEMBERSHIP), engine, ("sid", "lid"))
        self.choices: Batches[tuple[int, int], list[Any]] = Batches(self._choices_many)
        self.memberships: Batches[tuple[int, int], list[Any]] = Batches(self._memberships_many)
        self.leave_sql = leave_many_sql(json_as_text(MEMBERSHIP), engine)
        # One-click writes: one lane for each share of the subscribers (by id), so two batches
        # under way at once never touch the same subscription, nor lock rows in opposite orders.
        write = functools.partial(commit_each_on_failure, self._leave_many)
        self.leaves: tuple[Batches[Leave, Membership | None], ...] = tuple(
            Batches(write, lanes=1) for _ in range(write_lanes))

    async def _many(self, sql: str, keys: list[tuple[int, int]]) -> list[Outcome]:
        rows = await self.conns.rows(sql, {"sid": [k[0] for k in keys],
                                           "lid": [k[1] for k in keys]})
        return [(group, None) for group in by_position(rows, len(keys))]

    async def _choices_many(self, keys: list[tuple[int, int]]) -> list[Outcome]:
        return await self._many(self.choices_sql, keys)

    async def _memberships_many(self, keys: list[tuple[int, int]]) -> list[Outcome]:
        return await self._many(self.membership_sql, keys)

    async def preferences(self, subscriber_id: int, list_id: int) -> PreferencesView:
        """Same as load_preferences."""
        rows = await self.choices.run((subscriber_id, list_id))
        alone = None
        if not rows:  # rare: no list to offer, or no such subscriber
            query = self.subscriber
            found = await self.conns.rows(query.sql, query.params({"sid": subscriber_id}))
            alone = found[0] if found else None
        return view_of(subscriber_id, rows, alone)

    async def membership(self, subscriber_id: int, list_id: int) -> Membership | None:
        """Same as membership."""
        rows = await self.memberships.run((subscriber_id, list_id))
        return membership_of(rows[0]) if rows else None

    async def leave(self, item: Leave) -> Membership | None:
        """A one-click unsubscribe (or the page's button) and the membership it read before, in
        one statement with the concurrent requests' (subscriptions.leave_many_at_once),
        committed when it returns: what membership() and then leave_many() would do."""
        return await self.leaves[item.subscriber_id % len(self.leaves)].run(item)

    async def _leave_many(self, leaves: list[Leave]) -> list[Membership | None]:
        outcomes = await leave_many_at_once(self.conns, self.leave_sql, leaves)
        return [membership_of(rows[0]) if rows else None for _changed, rows in outcomes]

    async def close(self) -> None:
        await self.conns.close()
