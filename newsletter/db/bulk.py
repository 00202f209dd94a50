"""The subscriber merge's reads and writes as plain driver calls, for SQLite and PostgreSQL.

A CSV import writes millions of values. Through SQLAlchemy Core each value passes through its
type's processing (a datetime is converted, then formatted, once per row and column), which cost
more than SQLite's own inserts. Here each statement is written once, per engine, and a batch's
rows go to the driver's `executemany` as tuples, with the batch's one timestamp formatted once.

What the driver receives is what SQLAlchemy would have sent for the same columns: timestamps as
naive UTC (SQLite: the text SQLAlchemy stores, 'YYYY-MM-DD HH:MM:SS.ffffff'; PostgreSQL: a naive
datetime), JSON as the text `json.dumps` writes. Everything runs inside the caller's
transaction, and a driver error is raised as SQLAlchemy's DBAPIError, as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from functools import lru_cache
from json.encoder import encode_basestring_ascii as encode_string  # type: ignore[attr-defined]
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from newsletter.db.engine import sqlite_time
from newsletter.db.models import utcnow

# SQLite binds at most 32,766 values per statement; PostgreSQL takes a whole array as one.
CHUNK = 5000

# email, id, name, language, attributes, status on the list (None when not on it).
KNOWN_SUBSCRIBERS = ("SELECT s.email, s.id, s.name, s.language, s.attributes, c.status "
                     "FROM subscribers s LEFT JOIN subscriptions c "
                     "ON c.subscriber_id = s.id AND c.list_id = ? WHERE s.email {}")
KnownRow = tuple[str, int, str, str | None, Any, str | None]
# `?j` marks a JSON value: PostgreSQL gets the text cast to json.
INSERTS_SUBSCRIBERS = ("INSERT INTO subscribers (email, name, language, attributes, "
                       "created_at, updated_at) VALUES")
INSERT_SUBSCRIBER = f"{INSERTS_SUBSCRIBERS} (?, ?, ?, ?j, ?, ?)"
UPDATE_SUBSCRIBER = ("UPDATE subscribers SET name = ?, language = ?, attributes = ?j, "
                     "updated_at = ? WHERE id = ?")
INTO_EVENTS = "INSERT INTO events (kind, subscriber_id, list_id, created_at, source, data)"
INTO_SUBSCRIPTIONS = ("INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, "
                      "updated_at, confirmed_at)")
INSERT_SUBSCRIPTION = f"{INTO_SUBSCRIPTIONS} VALUES (?, ?, ?, ?, ?, ?)"
# The same two inserts on SQLite for a whole batch of subscriber ids given as one JSON array,
# in its order: one statement, and no Python tuple or parameter binding per row.
EACH_SUBSCRIPTION = (f"{INTO_SUBSCRIPTIONS} SELECT value, ?, ?, ?, ?, ? FROM json_each(?) "
                     "ORDER BY key")
EACH_EVENT = f"{INTO_EVENTS} SELECT ?, value, ?, ?, ?, ? FROM json_each(?) ORDER BY key"
# A request left behind by an earlier pending subscription of the same pair is replaced.
INSERT_REQUEST = ("INSERT INTO subscription_requests (subscriber_id, list_id, language, name, "
                  "source, created_at) VALUES (?, ?, NULL, '', ?, ?) "
                  "ON CONFLICT (subscriber_id, list_id) DO UPDATE SET language = NULL, "
                  "name = '', source = excluded.source, created_at = excluded.created_at, "
                  "asked_at = NULL")
INSERT_EVENT = f"{INTO_EVENTS} VALUES (?, ?, ?, ?, ?, ?j)"


def json_text(value: dict[str, Any]) -> str:
    """`json.dumps(value)`, as SQLAlchemy stores a JSON column; quicker for str -> str."""
    if len(value) == 1:  # an import with one extra column: no list to build and join
        ((k, v),) = value.items()
        if type(k) is str and type(v) is str:
            return "{" + encode_string(k) + ": " + encode_string(v) + "}"
    elif not value:
        return "{}"
    try:
        items = [encode_string(k) + ": " + encode_string(v) for k, v in value.items()]
    except TypeError:  # a key or value that is not a string
        return json.dumps(value)
    return "{" + ", ".join(items) + "}"


def attributes(stored: Any) -> dict[str, Any]:
    """A KnownRow's attributes as a dict (SQLite gives the JSON text, psycopg the value);
    only to be read, as it may be shared with other rows."""
    return (_parsed(stored) if isinstance(stored, str) else stored) or {}


@lru_cache(maxsize=4096)
def _parsed(text: str) -> Any:
    """Stored JSON text parsed, once per distinct text (many subscribers share theirs).

    Callers only read the result; it is shared between rows.
    """
    return json.loads(text)


class Bulk:
    """The merge's statements on one connection, in the dialect of its engine."""

    def __init__(self, conn: Connection) -> None:
        if not conn.in_transaction():
            conn.begin()  # as SQLAlchemy's own first statement would: the caller commits it
        raw = conn.connection.dbapi_connection
        assert raw is not None  # an open Connection has its driver connection
        self.cursor = raw.cursor()
        self.sqlite = conn.dialect.name == "sqlite"
        self.error: type[Exception] = conn.dialect.loaded_dbapi.Error

    def now(self) -> Any:
        """The current time, once, in the form the driver stores for a naive-UTC column."""
        value = utcnow()
        return sqlite_time(value) if self.sqlite else value.replace(tzinfo=None)

    def time(self, value: datetime) -> Any:
        """A datetime as the driver stores it (naive UTC)."""
        return sqlite_time(value) if self.sqlite else value

    # -- reads ---------------------------------------------------------------------------

    def any_suppressed(self) -> bool:
        """Whether the suppression list holds anything: when it is empty (a network that never
        had a bounce) a batch need not hash its addresses at all."""
        self._execute("SELECT 1 FROM suppressions LIMIT 1", ())
        return self.cursor.fetchone() is not None

    def suppressed(self, hashes: Sequence[str]) -> set[str]:
        """Which of these keyed address hashes are on the suppression list."""
        sql = "SELECT email_hash FROM suppressions WHERE email_hash {}"
        return {h for (h,) in self._select_in(sql, hashes)}

    def subscribers(self, list_id: int, emails: Sequence[str]) -> dict[str, KnownRow]:
        """email -> the driver's row of KNOWN_SUBSCRIBERS for the known ones among these: one
        read for the subscriber and its status on the list, as a re-import needs both for every
        row. The attributes are as stored (see `attributes`)."""
        return {row[0]: row for row in self._select_in(KNOWN_SUBSCRIBERS, emails, list_id)}

    def subscriber_ids(self, emails: Sequence[str]) -> dict[str, int]:
        """email -> id for the known ones among these."""
        return dict(self._select_in("SELECT email, id FROM subscribers WHERE email {}", emails))

    # -- writes --------------------------------------------------------------------------

    def insert_subscribers(self, rows: Iterable[tuple[str, str, str | None, dict[str, Any]]],
                           now: Any) -> dict[str, int]:
        """New subscribers from (email, name, language, attributes); created/updated `now`.
        Returns email -> the new subscriber's id."""
        params = [(email, name, language, json_text(attrs), now, now)
                  for email, name, language, attrs in rows]
        if not self.sqlite:
            self._many(INSERT_SUBSCRIBER, params)
            return self.subscriber_ids([p[0] for p in params])
        # One statement per chunk that returns the ids: no second read of the email index.
        # (CHUNK rows of 6 values stay under SQLite's 32,766 values a statement.)
        ids: dict[str, int] = {}
        for start in range(0, len(params), CHUNK):
            chunk = params[start:start + CHUNK]
            values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk))
            self._execute(f"{INSERTS_SUBSCRIBERS} {values} RETURNING email, id",
                          [value for row in chunk for value in row])
            ids.update(self.cursor.fetchall())
        return ids

    def update_subscribers(self, rows: Iterable[tuple[int, str, str | None, dict[str, Any]]],
                           now: Any) -> None:
        """Set name, language and attributes from (id, name, language, attributes)."""
        self._many(UPDATE_SUBSCRIBER, [(name, language, json_text(attrs), now, sid)
                                       for sid, name, language, attrs in rows])

    def insert_subscriptions(self, list_id: int, ids: Iterable[int], status: str, now: Any,
                             confirmed_at: Any) -> None:
        if self.sqlite:
            self._each_id(EACH_SUBSCRIPTION, ids, list_id, status, now, now, confirmed_at)
            return
        self._many(INSERT_SUBSCRIPTION,
                   [(sid, list_id, status, now, now, confirmed_at) for sid in ids])

    def confirm_subscriptions(self, list_id: int, ids: Sequence[int], now: Any) -> None:
        """Mark these subscriptions confirmed (now)."""
        sql = ("UPDATE subscriptions SET status = 'confirmed', confirmed_at = ?, updated_at = ? "
               "WHERE list_id = ? AND subscriber_id {}")
        for chunk, marks in self._chunks(ids):
            self._execute(sql.format(marks), (now, now, list_id, *chunk))

    def insert_requests(self, list_id: int, ids: Iterable[int], source: str, now: Any) -> None:
        """A pending request for each subscriber id, asking for nothing beyond the subscriber
        row (language NULL, name empty), from `source`."""
        self._many(INSERT_REQUEST, [(sid, list_id, source[:512], now) for sid in ids])

    def delete_requests(self, list_id: int, ids: Sequence[int]) -> None:
        """Forget the pending requests of these subscribers on the list."""
        sql = "DELETE FROM subscription_requests WHERE list_id = ? AND subscriber_id {}"
        for chunk, marks in self._chunks(ids):
            self._execute(sql.format(marks), (list_id, *chunk))

    def insert_events(self, kind: str, list_id: int, ids: Iterable[int], now: Any, source: str,
                      data: dict[str, Any]) -> None:
        """One audit event per subscriber id, all with the same kind, source and data."""
        payload = json_text(data)
        if self.sqlite:
            self._each_id(EACH_EVENT, ids, kind, list_id, now, source, payload)
            return
        self._many(INSERT_EVENT, [(kind, sid, list_id, now, source, payload) for sid in ids])

    # -- plumbing ------------------------------------------------------------------------

    def _chunks(self, values: Sequence[Any]) -> Iterator[tuple[Sequence[Any], str]]:
        """(chunk, the SQL that follows the column) for `column IN chunk`, per engine."""
        if not self.sqlite:
            if values:
                yield (list(values),), "= ANY(?)"
            return
        for start in range(0, len(values), CHUNK):
            chunk = values[start:start + CHUNK]
            yield chunk, f"IN ({', '.join('?' * len(chunk))})"

    def _select_in(self, sql: str, values: Sequence[Any], *before: Any) -> Iterator[Any]:
        for chunk, marks in self._chunks(values):
            self._execute(sql.format(marks), (*before, *chunk))
            yield from self.cursor.fetchall()

    def _sql(self, sql: str) -> str:
        if self.sqlite:
            return sql.replace("?j", "?")
        return sql.replace("?j", "CAST(? AS json)").replace("?", "%s")

    def _execute(self, sql: str, params: Sequence[Any]) -> None:
        try:
            self.cursor.execute(self._sql(sql), params)
        except self.error as exc:
            raise DBAPIError.instance(sql, params, exc, self.error) from exc

    def _each_id(self, sql: str, ids: Iterable[int], *values: Any) -> None:
        """An EACH_ statement: its row inserted once per id, in the order given."""
        ids = list(ids)
        if ids:
            self._execute(sql, (*values, json.dumps(ids)))

    def _many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        try:
            self.cursor.executemany(self._sql(sql), rows)
        except self.error as exc:
            raise DBAPIError.instance(sql, None, exc, self.error) from exc
