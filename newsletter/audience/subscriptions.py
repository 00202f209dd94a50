"""The subscription state machine, pending -> confirmed -> unsubscribed: the one writer of
`subscriptions.status`.

Every front door goes through here: the form (audience/optin.py), `subscribers add` and import
(audience/subscribers.py, in bulk), the preferences page and one-click unsubscribe
(audience/preferences.py, web/unsubscribe.py), a complaint (bounces/policy.py) and
`subscribers remove --list`. Each move records its audit event in the same transaction.

What a pending subscription asked for (its language and name, and where it came from) is kept in
`subscription_requests` from `register` until `confirm` reads it or `leave_list` ends it; the
audit events are a trail only, never read back as state. People added by `subscribers add` or
import ask for nothing beyond the subscriber row the editor wrote, so their request is empty.
The request also keeps when its confirmation mail was last queued (`asked_at`, NULL while
nobody asked: `subscribers invite` asks those).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, delete, insert, select, tuple_, update

from newsletter.audience.audit import RequestMeta, event_row, insert_events, record_event
from newsletter.db.bulk import Bulk
from newsletter.db.models import utcnow
from newsletter.db.tables import REQUESTS, SUBSCRIPTIONS

if TYPE_CHECKING:  # psycopg is imported by the web app only
    from newsletter.db.pgasync import AsyncConnections


@dataclass(frozen=True)
class Requested:
    """What a pending subscription asked for; None and "": keep the subscriber's own."""

    language: str | None = None
    name: str = ""
    source: str = ""

    def changes(self) -> dict[str, Any]:
        """The subscriber columns a confirmation sets."""
        wanted = {"language": self.language, "name": self.name}
        return {column: value for column, value in wanted.items() if value}


# Built once with bind parameters: one-click unsubscribes run them on the web app's hot path,
# where building a SQLAlchemy statement costs more than SQLite takes to run it.
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
_FORGET_MANY = delete(REQUESTS).where(
    REQUESTS.c.subscriber_id.in_(bindparam("sids", expanding=True)),
    tuple_(REQUESTS.c.subscriber_id, REQUESTS.c.list_id).in_(bindparam("pairs", expanding=True)),
)
_FORGET = delete(REQUESTS).where(
    REQUESTS.c.subscriber_id == bindparam("sid"), REQUESTS.c.list_id == bindparam("lid")
)


def subscription(conn: Connection, subscriber_id: int, list_id: int) -> dict[str, Any] | None:
    """The subscription row of this subscriber on this list, or None."""
    row = (
        conn.execute(
            select(SUBSCRIPTIONS).where(
                SUBSCRIPTIONS.c.subscriber_id == subscriber_id, SUBSCRIPTIONS.c.list_id == list_id
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def has_confirmed(conn: Connection, subscriber_id: int) -> bool:
    """True when the subscriber confirmed some list (someone proved the mailbox)."""
    query = select(SUBSCRIPTIONS.c.id).where(
        SUBSCRIPTIONS.c.subscriber_id == subscriber_id, SUBSCRIPTIONS.c.status == "confirmed"
    )
    return conn.execute(query).first() is not None


def set_status(
    conn: Connection, subscriber_id: int, list_id: int, status: str, now: datetime
) -> None:
    """Create or move a subscription to a status, stamping the matching time (no event: the
    moves below record theirs)."""
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == "confirmed":
        values["confirmed_at"] = now
    elif status == "unsubscribed":
        values["unsubscribed_at"] = now
    existing = subscription(conn, subscriber_id, list_id)
    if existing is None:
        conn.execute(
            SUBSCRIPTIONS.insert().values(
                subscriber_id=subscriber_id, list_id=list_id, created_at=now, **values
            )
        )
    else:
        conn.execute(
            update(SUBSCRIPTIONS).where(SUBSCRIPTIONS.c.id == existing["id"]).values(**values)
        )


def requested(conn: Connection, subscriber_id: int, list_id: int) -> Requested | None:
    """What the pending subscription asked for; None when there is no pending request."""
    row = conn.execute(
        select(REQUESTS.c.language, REQUESTS.c.name, REQUESTS.c.source).where(
            REQUESTS.c.subscriber_id == subscriber_id, REQUESTS.c.list_id == list_id
        )
    ).first()
    return Requested(row.language, row.name or "", row.source or "") if row else None


def register(
    conn: Connection,
    subscriber_id: int,
    list_id: int,
    wanted: Requested,
    *,
    status: str | None,
    meta: RequestMeta,
    now: datetime,
    data: dict[str, Any],
    asked: bool,
) -> None:
    """Make the subscription pending (`status` is its current one, None: none yet), keep what
    it asks for (a later request replaces an earlier one) and record the "subscribe" event.

    `asked`: a confirmation mail was queued for it now; if not, an earlier request of the same
    pending subscription keeps its time."""
    if status == "confirmed":
        raise ValueError("a confirmed subscription is not registered again")
    asked_at = now if asked else None
    if status != "pending":
        set_status(conn, subscriber_id, list_id, "pending", now)
    elif not asked:
        asked_at = conn.scalar(select(REQUESTS.c.asked_at).where(
            REQUESTS.c.subscriber_id == subscriber_id, REQUESTS.c.list_id == list_id))
    conn.execute(_FORGET, {"sid": subscriber_id, "lid": list_id})
    conn.execute(insert(REQUESTS).values(
        subscriber_id=subscriber_id, list_id=list_id, language=wanted.language,
        name=wanted.name, source=wanted.source[:512], created_at=now, asked_at=asked_at))
    record_event(conn, "subscribe", meta, now, subscriber_id, list_id, data)


def mark_asked(conn: Connection, subscriber_id: int, list_id: int, now: datetime) -> None:
    """Record that a confirmation mail was queued for this pending subscription's request.

    A pending subscription always has a request (register, merge and migration 0005 write
    one); one written outside this module without it gets an empty one here, so it is not
    asked again."""
    asked = update(REQUESTS).where(
        REQUESTS.c.subscriber_id == subscriber_id, REQUESTS.c.list_id == list_id
    ).values(asked_at=now)
    if not conn.execute(asked).rowcount:
        conn.execute(insert(REQUESTS).values(
            subscriber_id=subscriber_id, list_id=list_id, language=None, name="", source="",
            created_at=now, asked_at=now))


def confirm(
    conn: Connection,
    subscriber_id: int,
    list_id: int,
    *,
    meta: RequestMeta,
    now: datetime,
    data: dict[str, Any],
    kind: str = "confirm",
) -> Requested | None:
    """Confirm the subscription (creating it if needed) and record the event (`kind`); returns
    the pending request it ends, for the caller to apply (None: there was none)."""
    wanted = requested(conn, subscriber_id, list_id)
    if wanted is not None:
        conn.execute(_FORGET, {"sid": subscriber_id, "lid": list_id})
    set_status(conn, subscriber_id, list_id, "confirmed", now)
    record_event(conn, kind, meta, now, subscriber_id, list_id, data)
    return wanted


def leave_list(
    conn: Connection, subscriber_id: int, list_id: int, meta: RequestMeta, now: datetime, via: str
) -> bool:
    """Unsubscribe from one list; False when there was nothing to leave."""
    values = {"sid": subscriber_id, "lid": list_id, "now": now}
    changed = conn.execute(_LEAVE, values).rowcount
    if changed:
        conn.execute(_FORGET, values)
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
    """Several leave_list() calls in the caller's transaction: for each, whether it changed
    anything. One UPDATE for them all and one INSERT of their audit events, so the web app can
    write the one-click unsubscribes of many requests at once (a repeat, also within the same
    call, changes nothing and records nothing, as with leave_list()).
    """
    now = now or utcnow()
    pairs = list({(item.subscriber_id, item.list_id) for item in leaves})
    values = {"sids": list({sid for sid, _ in pairs}), "pairs": pairs, "now": now}
    left = {tuple(row) for row in conn.execute(_LEAVE_MANY, values)}
    if left:
        conn.execute(_FORGET_MANY, {"sids": list({sid for sid, _ in left}), "pairs": list(left)})
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


async def leave_many_at_once(
    conns: AsyncConnections, sql: str, leaves: Sequence[Leave], now: datetime | None = None
) -> list[tuple[bool, list[Any]]]:
    """leave_many() as one statement on PostgreSQL's asyncio connections, for the web app's
    one-click unsubscribes: the same changes and audit events, committed (on its own) when it
    returns. `sql` is a db/pgasync.leave_many_sql statement, whose read's rows (as they were
    before) come back with each item's outcome."""
    from newsletter.db import pgasync

    now = now or utcnow()
    events = [event_row("unsubscribe", item.meta, now, item.subscriber_id, item.list_id,
                        {"via": item.via}) for item in leaves]
    return await pgasync.leave_many(conns, sql, events, now)


@dataclass(frozen=True)
class Merged:
    """What a bulk merge did to one list's subscriptions."""

    created: list[int]  # subscriber ids given a new subscription
    confirmed: list[int]  # subscriber ids whose pending subscription was confirmed
    kept_unsubscribed: int  # left alone: they must opt in again


def merge(db: Bulk, list_id: int, ids: Sequence[int], current: dict[int, str], now: Any, *,
          confirmed: bool, source: str) -> Merged:
    """Subscribe these subscribers in bulk: new ones pending (with an empty request) or
    confirmed; pending ones confirmed when `confirmed`; one audit event per change.

    `current` holds the status of each of them already on the list (read with the subscribers,
    in the caller's transaction)."""
    status = "confirmed" if confirmed else "pending"
    fresh = [sid for sid in ids if sid not in current]
    db.insert_subscriptions(list_id, fresh, status, now, now if confirmed else None)
    to_confirm = [s for s, st in current.items() if confirmed and st == "pending"]
    db.confirm_subscriptions(list_id, to_confirm, now)
    if confirmed:
        db.delete_requests(list_id, to_confirm)
    else:
        db.insert_requests(list_id, fresh, source, now)
    kept = sum(1 for st in current.values() if st == "unsubscribed")
    db.insert_events("import-confirmed" if confirmed else "import", list_id, fresh + to_confirm,
                     now, source, {"status": status})
    return Merged(fresh, to_confirm, kept)
