"""What a subscriber changes through a personal link: language, name, lists, leaving.

The link's token proves the mailbox (it only ever travels in mail to that address), so adding a
public list here confirms it at once. Every change is written to `events` with its old and new
values. Unsubscribing is immediate and idempotent: a repeat finds nothing to change.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, cast

import psycopg
from sqlalchemy import (
    ClauseElement,
    Connection,
    Engine,
    bindparam,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.sql.compiler import SQLCompiler

from newsletter.audience.addresses import normalize_email
from newsletter.audience.language import (
    REJECT,
    ListLanguages,
    effective_language,
    list_languages,
)
from newsletter.audience.lists import list_text
from newsletter.audience.names import clean_name
from newsletter.audience.optin import (
    ADDRESS_WINDOW,
    EVENT_INSERT,
    FORM_KINDS,
    LISTS,
    SUBSCRIBERS,
    SUBSCRIPTIONS,
    OptIn,
    RequestMeta,
    check_ip_limit,
    event_row,
    is_suppressed,
    record_event,
    set_status,
)
from newsletter.db.engine import is_sqlite, sqlite_time
from newsletter.db.models import utcnow
from newsletter.errors import NotFoundError, ValidationError
from newsletter.links import preferences_url
from newsletter.outbox import count_recent, enqueue


@dataclass(frozen=True)
class ListChoice:
    """One list on the preferences form."""

    id: int
    slug: str
    name: str
    description: str
    subscribed: bool
    status: str | None
    languages: ListLanguages = ListLanguages((), "")  # offered by the list (none: not read)


@dataclass(frozen=True)
class PreferencesView:
    """Everything the preferences page shows."""

    subscriber_id: int
    email: str
    name: str
    language: str | None
    lists: tuple[ListChoice, ...]

    @property
    def subscribed(self) -> bool:
        return any(choice.subscribed for choice in self.lists)

    @cached_property
    def languages(self) -> ListLanguages:
        """The languages the page offers: those of the lists it shows (each list sends a
        subscriber's language when it offers it, its default otherwise)."""
        default = self.lists[0].languages.default if self.lists else self.language or ""
        return ListLanguages.union((c.languages for c in self.lists), default, "these newsletters")

    def shown_language(self, page_language: str) -> str:
        """The language selected on the form: theirs, else the page's, else the first offered."""
        offered = self.languages.offered
        for code in (self.language, page_language):
            if code in offered:
                return str(code)
        return offered[0] if offered else page_language


# Statements built once with bind parameters: on the hot path (every preferences page and
# one-click POST) building a SQLAlchemy statement costs more than SQLite takes to run it.
_SUBSCRIBER = select(
    SUBSCRIBERS.c.id, SUBSCRIBERS.c.email, SUBSCRIBERS.c.name, SUBSCRIBERS.c.language
).where(SUBSCRIBERS.c.id == bindparam("sid"))
# One row per list the subscriber may choose (public, the link's own, or already theirs),
# with the subscriber's own columns repeated: one round trip for the whole page.
_CHOICES = (
    select(
        SUBSCRIBERS.c.email,
        SUBSCRIBERS.c.name.label("subscriber_name"),
        SUBSCRIBERS.c.language,
        LISTS.c.id,
        LISTS.c.slug,
        LISTS.c.name,
        LISTS.c.description,
        SUBSCRIPTIONS.c.status,
        LISTS.c.default_language,
        LISTS.c.names,
        LISTS.c.descriptions,
        LISTS.c.languages,
    )
    .select_from(
        SUBSCRIBERS.join(LISTS, true()).outerjoin(
            SUBSCRIPTIONS,
            (SUBSCRIPTIONS.c.subscriber_id == SUBSCRIBERS.c.id)
            & (SUBSCRIPTIONS.c.list_id == LISTS.c.id),
        )
    )
    .where(
        SUBSCRIBERS.c.id == bindparam("sid"),
        or_(
            LISTS.c.public.is_(True),
            LISTS.c.id == bindparam("lid"),
            SUBSCRIPTIONS.c.id.is_not(None),
        ),
    )
    .order_by(LISTS.c.name)
)
_MEMBERSHIP = (
    select(SUBSCRIBERS.c.language, LISTS.c.default_language, LISTS.c.name, SUBSCRIPTIONS.c.status,
           LISTS.c.names, LISTS.c.languages)
    .select_from(
        SUBSCRIBERS.join(LISTS, LISTS.c.id == bindparam("lid")).outerjoin(
            SUBSCRIPTIONS,
            (SUBSCRIPTIONS.c.subscriber_id == SUBSCRIBERS.c.id)
            & (SUBSCRIPTIONS.c.list_id == LISTS.c.id),
        )
    )
    .where(SUBSCRIBERS.c.id == bindparam("sid"))
)
_LEAVE_MANY = (
    update(SUBSCRIPTIONS)
    .where(
        # The first test lets SQLite use the (subscriber_id, list_id) index; the second is exact.
        SUBSCRIPTIONS.c.subscriber_id.in_(bindparam("sids", expanding=True)),
        tuple_(SUBSCRIPTIONS.c.subscriber_id, SUBSCRIPTIONS.c.list_id).in_(
            bindparam("pairs", expanding=True)
        ),
        SUBSCRIPTIONS.c.status != "unsubscribed",
    )
    .values(status="unsubscribed", unsubscribed_at=bindparam("now"), updated_at=bindparam("now"))
    .returning(SUBSCRIPTIONS.c.subscriber_id, SUBSCRIPTIONS.c.list_id)
)
_LEAVE = (
    update(SUBSCRIPTIONS)
    .where(
        SUBSCRIPTIONS.c.subscriber_id == bindparam("sid"),
        SUBSCRIPTIONS.c.list_id == bindparam("lid"),
        SUBSCRIPTIONS.c.status != "unsubscribed",
    )
    .values(status="unsubscribed", unsubscribed_at=bindparam("now"), updated_at=bindparam("now"))
)


@dataclass(frozen=True)
class Membership:
    """A subscriber and one list, as a page about them needs it."""

    language: str | None
    default_language: str
    list_name: str
    status: str | None  # None: no subscription row


def membership(conn: Connection, subscriber_id: int, list_id: int) -> Membership | None:
    """The subscriber's language, the list's default and name, the status; None when gone."""
    row = conn.execute(_MEMBERSHIP, {"sid": subscriber_id, "lid": list_id}).first()
    return _membership(row) if row else None


def _membership(row: Sequence[Any]) -> Membership:
    """Membership from a _MEMBERSHIP row, the list's name in the subscriber's language."""
    language, default, name, status, names, languages = row
    reads = effective_language(language, languages, default)
    return Membership(language, default, list_text(names, name, reads, default), status)


def load_preferences(conn: Connection, subscriber_id: int, list_id: int) -> PreferencesView:
    """The subscriber's data and the lists they may choose: public ones, the link's, their own."""
    rows = conn.execute(_CHOICES, {"sid": subscriber_id, "lid": list_id}).all()
    alone = None if rows else conn.execute(_SUBSCRIBER, {"sid": subscriber_id}).first()
    return _view(subscriber_id, rows, alone)


def _view(subscriber_id: int, rows: Sequence[Any], alone: Sequence[Any] | None) -> PreferencesView:
    """PreferencesView from _CHOICES rows, or from the _SUBSCRIBER row when no list is offered."""
    if rows:
        email, name, language = rows[0][0], rows[0][1], rows[0][2]
    elif alone is None:
        raise NotFoundError("this subscriber no longer exists")
    else:  # no list to show at all: the subscriber alone
        email, name, language = alone[1], alone[2], alone[3]
    return PreferencesView(subscriber_id, email, name, language,
                           tuple(_choice(r, language) for r in rows))


def _choice(r: Sequence[Any], language: str | None) -> ListChoice:
    """A _CHOICES row as a ListChoice: name and description in the language the subscriber
    reads the list in."""
    offered = list_languages(r[11], r[8], r[4])
    reads = offered.effective(language)
    return ListChoice(r[3], r[4], list_text(r[9], r[5], reads, r[8]),
                      list_text(r[10], r[6] or "", reads, r[8]), r[7] == "confirmed", r[7],
                      offered)


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
        self.choices = _Compiled(_CHOICES, engine)
        self.subscriber = _Compiled(_SUBSCRIBER, engine)
        self.membership_sql = _Compiled(_MEMBERSHIP, engine)
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
        return _view(subscriber_id, rows, alone)

    def membership(self, subscriber_id: int, list_id: int) -> Membership | None:
        """Same as membership."""
        rows = self._rows(self.membership_sql, {"sid": subscriber_id, "lid": list_id})
        return _membership(rows[0]) if rows else None

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
        self.choices = _Compiled(_CHOICES, engine)
        self.subscriber = _Compiled(_SUBSCRIBER, engine)
        self.membership_sql = _Compiled(_MEMBERSHIP, engine)
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
        return _view(subscriber_id, rows, alone)

    async def membership(self, subscriber_id: int, list_id: int) -> Membership | None:
        """Same as membership."""
        rows = await self._rows(self.membership_sql, {"sid": subscriber_id, "lid": list_id})
        return _membership(rows[0]) if rows else None

    async def close(self) -> None:
        conns, self.conns = self.conns, [None] * self.size
        for conn in conns:
            if conn is not None:
                await conn.close()


def update_preferences(
    ctx: OptIn,
    *,
    subscriber_id: int,
    list_id: int,
    name: str,
    language: str,
    list_ids: Collection[int],
    meta: RequestMeta,
    now: datetime | None = None,
) -> PreferencesView:
    """Apply the form: name, language, and exactly the chosen lists among those offered."""
    now = now or utcnow()
    name = clean_name(name)
    with ctx.engine.begin() as conn:
        view = load_preferences(conn, subscriber_id, list_id)
        chosen = _new_language(view, language)
        offered = {choice.id: choice for choice in view.lists}
        unknown = set(list_ids) - set(offered)
        if unknown:
            raise ValidationError("lists: a chosen list is not offered here")
        changes: dict[str, Any] = {}
        if name != view.name:
            changes["name"] = [view.name, name]
        if chosen != view.language:
            changes["language"] = [view.language, chosen]
        if changes:
            conn.execute(
                update(SUBSCRIBERS)
                .where(SUBSCRIBERS.c.id == subscriber_id)
                .values(name=name, language=chosen, updated_at=now)
            )
            record_event(conn, "preferences", meta, now, subscriber_id, list_id, changes)
        for choice in view.lists:
            wanted = choice.id in list_ids
            if wanted and not choice.subscribed:
                set_status(conn, subscriber_id, choice.id, "confirmed", now)
                record_event(
                    conn,
                    "subscribe",
                    meta,
                    now,
                    subscriber_id,
                    choice.id,
                    {"lists": [choice.slug], "outcome": "confirmed", "via": "preferences"},
                )
            elif not wanted and choice.subscribed:
                leave_list(conn, subscriber_id, choice.id, meta, now, "preferences")
        return load_preferences(conn, subscriber_id, list_id)


def _new_language(view: PreferencesView, requested: str) -> str | None:
    """The language to store: unchanged when none or the current one is posted, else one the
    page offers (a LanguageError otherwise: a forged post)."""
    requested = requested.strip()
    if not requested or requested == view.language:
        return view.language
    return view.languages.accept(requested, REJECT)


def leave_list(
    conn: Connection, subscriber_id: int, list_id: int, meta: RequestMeta, now: datetime, via: str
) -> bool:
    """Unsubscribe from one list; False when there was nothing to leave."""
    changed = conn.execute(_LEAVE, {"sid": subscriber_id, "lid": list_id, "now": now}).rowcount
    if changed:
        record_event(conn, "unsubscribe", meta, now, subscriber_id, list_id, {"via": via})
    return bool(changed)


@dataclass(frozen=True)
class Leave:
    """One request to leave one list, as leave_many takes it."""

    subscriber_id: int
    list_id: int
    meta: RequestMeta
    via: str = "page"


def leave_many(
    conn: Connection, leaves: Sequence[Leave], now: datetime | None = None
) -> list[bool]:
    """Several unsubscribe() calls in the caller's transaction: for each, whether it changed
    anything. One UPDATE for them all and one INSERT of their audit events, so the web app can
    write the one-click unsubscribes of many requests at once (a repeat, also within the same
    call, changes nothing and records nothing, as with unsubscribe()).
    """
    now = now or utcnow()
    pairs = list({(item.subscriber_id, item.list_id) for item in leaves})
    values = {"sids": list({sid for sid, _ in pairs}), "pairs": pairs, "now": now}
    left = {tuple(row) for row in conn.execute(_LEAVE_MANY, values)}
    events = []
    changed = []
    for item in leaves:
        key = (item.subscriber_id, item.list_id)
        changed.append(key in left)
        if key in left:
            left.discard(key)
            events.append(event_row("unsubscribe", item.meta, now, item.subscriber_id,
                                    item.list_id, {"via": item.via}))
    if events:
        insert_events(conn, events)
    return changed


_SQLITE_EVENTS = (
    "INSERT INTO events (kind, subscriber_id, list_id, created_at, ip, user_agent, source, "
    "consent_text, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Many audit entries in one executemany.

    On SQLite the rows go to the driver as the models store them (naive UTC text, JSON text):
    SQLAlchemy's per-row parameter processing cost more than SQLite's insert, and in the web
    app it runs on the writer thread, which shares the GIL with the requests.
    """
    if not is_sqlite(conn):
        conn.execute(EVENT_INSERT, rows)
        return
    conn.exec_driver_sql(_SQLITE_EVENTS, [
        (r["kind"], r["subscriber_id"], r["list_id"], sqlite_time(r["created_at"]), r["ip"],
         r["user_agent"], r["source"], r["consent_text"], json.dumps(r["data"]))
        for r in rows
    ])


def unsubscribe(
    ctx: OptIn,
    *,
    subscriber_id: int,
    list_id: int,
    meta: RequestMeta,
    via: str = "page",
    now: datetime | None = None,
) -> bool:
    """Leave one list at once (RFC 8058 one-click too); repeating it changes nothing."""
    with ctx.engine.begin() as conn:
        return leave_list(conn, subscriber_id, list_id, meta, now or utcnow(), via)


def unsubscribe_all(
    ctx: OptIn, *, subscriber_id: int, meta: RequestMeta, now: datetime | None = None
) -> int:
    """Leave every list; returns how many subscriptions ended."""
    now = now or utcnow()
    with ctx.engine.begin() as conn:
        list_ids = (
            conn.execute(
                select(SUBSCRIPTIONS.c.list_id).where(
                    SUBSCRIPTIONS.c.subscriber_id == subscriber_id,
                    SUBSCRIPTIONS.c.status != "unsubscribed",
                )
            )
            .scalars()
            .all()
        )
        return sum(leave_list(conn, subscriber_id, lid, meta, now, "all") for lid in list_ids)


def send_preferences_link(
    ctx: OptIn,
    *,
    email: str,
    language: str,
    meta: RequestMeta,
    now: datetime | None = None,
) -> str:
    """Mail a known address its preferences link; the caller answers the same whatever happens."""
    now = now or utcnow()
    email = normalize_email(email)
    with ctx.engine.begin() as conn:
        check_ip_limit(conn, FORM_KINDS, meta.ip, ctx.max_per_ip, now)
        return preferences_link_in(ctx, conn, email, language, meta, now)


def preferences_link_in(
    ctx: OptIn, conn: Connection, email: str, language: str, meta: RequestMeta, now: datetime
) -> str:
    """send_preferences_link()'s work on a checked address, in the caller's transaction."""
    subscriber = (
        conn.execute(select(SUBSCRIBERS).where(SUBSCRIBERS.c.email == email)).mappings().first()
    )
    outcome = "unknown"
    if subscriber is not None:
        outcome = _mail_link(ctx, conn, dict(subscriber), language, now)
    sid = subscriber["id"] if subscriber is not None else None
    record_event(conn, "manage", meta, now, sid, None, {"outcome": outcome})
    return outcome


def _mail_link(
    ctx: OptIn, conn: Connection, subscriber: dict[str, Any], language: str, now: datetime
) -> str:
    if is_suppressed(conn, subscriber["email"], ctx.address_key):
        return "suppressed"
    if (
        count_recent(conn, "preferences", subscriber["email"], now - ADDRESS_WINDOW)
        >= ctx.max_per_address
    ):
        return "throttled"
    list_id = conn.execute(
        select(SUBSCRIPTIONS.c.list_id)
        .where(SUBSCRIPTIONS.c.subscriber_id == subscriber["id"])
        .order_by((SUBSCRIPTIONS.c.status == "confirmed").desc(), SUBSCRIPTIONS.c.id)
        .limit(1)
    ).scalar()
    if list_id is None:
        return "no-subscription"
    message = ctx.mailer.preferences_link(
        email=subscriber["email"],
        name=subscriber["name"],
        language=subscriber["language"] or language,
        url=preferences_url(ctx.base_url, ctx.signer, subscriber["id"], list_id),
    )
    enqueue(conn, "preferences", subscriber["email"], ctx.mailer.sender, message)
    return "sent"
