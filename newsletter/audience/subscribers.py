"""Subscribers and their subscriptions: add, merge in bulk, list, remove.

`merge_batch` is the one place that writes subscribers. The CLI's `subscribers add` and the CSV
import both go through it, so the merge rules are the same everywhere:
- a new address becomes a subscriber; a known one gets the non-empty fields given;
- a subscription starts `pending`, or `confirmed` when the caller has proof of consent (the
  subscriptions themselves are written by audience/subscriptions.py, the state machine);
- an `unsubscribed` subscription is never revived (the person must opt in again);
- a suppressed address is never added.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, select

from newsletter.audience.addresses import normalize_email
from newsletter.audience.audit import RequestMeta
from newsletter.audience.language import REJECT, ListLanguages
from newsletter.audience.lists import ListInfo, get_list
from newsletter.audience.names import clean_name
from newsletter.audience.subscriptions import leave_list, merge, subscription
from newsletter.db.bulk import Bulk, KnownRow, attributes
from newsletter.db.models import utcnow
from newsletter.db.tables import SUBSCRIBERS, SUBSCRIPTIONS, SUPPRESSIONS
from newsletter.errors import NotFoundError, ValidationError
from newsletter.keyring import address_hash

CLI = RequestMeta(source="cli")
# address -> its subscriber as read (newsletter.db.bulk.KnownRow), None: not a subscriber.
Known = dict[str, KnownRow | None]


@dataclass(slots=True)
class NewRow:
    """One subscriber as given by a user (already validated), with its source line."""

    email: str
    name: str = ""
    language: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    line: int = 0
    # The language is only the list's default (no cell): it must not replace a known one.
    default_language: bool = False


@dataclass
class MergeCounts:
    """What a merge did (or, in a dry run, would do)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    subscribed: int = 0
    confirmed: int = 0
    kept_unsubscribed: int = 0
    suppressed: list[int] = field(default_factory=list)

    def add(self, other: MergeCounts) -> None:
        for name in ("created", "updated", "unchanged", "subscribed", "confirmed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.kept_unsubscribed += other.kept_unsubscribed
        self.suppressed.extend(other.suppressed)


def suppressed_hashes(conn: Connection, hashes: list[str]) -> set[str]:
    """Which of these keyed hashes are on the suppression list."""
    if not hashes:
        return set()
    col = SUPPRESSIONS.c.email_hash
    return set(conn.scalars(select(col).where(col.in_(hashes))))


def _changes(row: NewRow, name: str, language: str | None, stored: Any) -> dict[str, Any]:
    """What a row changes on a known subscriber with this name, language and stored
    attributes (newsletter.db.bulk.attributes)."""
    changes: dict[str, Any] = {}
    if row.name and row.name != name:
        changes["name"] = row.name
    if row.language and row.language != language and not (row.default_language and language):
        changes["language"] = row.language
    if row.attributes:
        known = attributes(stored)
        if not row.attributes.items() <= known.items():
            changes["attributes"] = {**known, **row.attributes}
    return changes


def known_subscribers(db: Bulk, list_id: int, emails: list[str]) -> Known:
    """Each of these addresses -> its subscriber's row, or None when there is none."""
    known: Known = dict.fromkeys(emails)
    known.update(db.subscribers(list_id, emails))
    return known


def _upsert_subscribers(db: Bulk, list_id: int, rows: list[NewRow], now: Any,
                        counts: MergeCounts, known: Known) -> tuple[dict[str, int], dict[int, str]]:
    """Create the new addresses, update the known ones (only those a row changes).

    `known` may already hold some of the addresses (the others are read). Returns email ->
    subscriber id, and subscriber id -> status of those already on the list.
    """
    known.update(known_subscribers(db, list_id, [r.email for r in rows if r.email not in known]))
    new: list[NewRow] = []
    updates: list[tuple[int, str, str | None, dict[str, Any]]] = []
    ids: dict[str, int] = {}
    statuses: dict[int, str] = {}
    for r in rows:
        row = known[r.email]
        if row is None:
            new.append(r)
            continue
        _, sid, name, language, stored, status = row
        ids[r.email] = sid
        if status is not None:
            statuses[sid] = status
        changes = _changes(r, name, language, stored)
        if changes:
            updates.append((sid, changes.get("name", name), changes.get("language", language),
                            changes.get("attributes", attributes(stored))))
    created = db.insert_subscribers(((r.email, r.name, r.language or None, r.attributes)
                                     for r in new), now)
    db.update_subscribers(updates, now)
    counts.created += len(new)
    counts.updated += len(updates)
    counts.unchanged += len(rows) - len(new) - len(updates)
    ids.update(created)
    return ids, statuses


def merge_batch(
    conn: Connection,
    lst: ListInfo,
    rows: list[NewRow],
    *,
    address_key: str,
    confirmed: bool = False,
    source: str = "",
    known: Known | None = None,
) -> MergeCounts:
    """Merge validated rows into the list inside the caller's transaction.

    The writes go through newsletter.db.bulk (driver calls, the batch's time formatted once).
    `known` (from known_subscribers, in the same transaction) spares reading those again.
    """
    counts = MergeCounts()
    db = Bulk(conn)
    if db.any_suppressed():  # read per batch: a bounce may suppress someone meanwhile
        hashes = {r.email: address_hash(r.email, address_key) for r in rows}
        blocked = db.suppressed(list(hashes.values()))
        if blocked:
            counts.suppressed = [r.line for r in rows if hashes[r.email] in blocked]
            rows = [r for r in rows if hashes[r.email] not in blocked]
    if not rows:
        return counts
    now = db.now()
    ids, statuses = _upsert_subscribers(db, lst.id, rows, now, counts, dict(known or {}))
    merged = merge(db, lst.id, list(ids.values()), statuses, now, confirmed=confirmed,
                   source=source)
    counts.subscribed += len(merged.created)
    counts.confirmed += len(merged.confirmed) + (len(merged.created) if confirmed else 0)
    counts.kept_unsubscribed += merged.kept_unsubscribed
    return counts


def add_subscriber(
    engine: Engine,
    *,
    email: str,
    list_slug: str,
    address_key: str,
    name: str = "",
    language: str = "",
    confirmed: bool = False,
    consent_source: str = "",
) -> MergeCounts:
    """Add one address to a list (pending unless confirmed with a consent source)."""
    lst = get_list(engine, list_slug)
    if confirmed and not consent_source.strip():
        raise ValidationError("--confirmed needs --consent-source saying where consent came from")
    lang = ListLanguages.of(lst).accept(language, REJECT)
    row = NewRow(email=normalize_email(email), name=clean_name(name), language=lang, line=1)
    with engine.begin() as conn:
        counts = merge_batch(conn, lst, [row], address_key=address_key, confirmed=confirmed,
                             source=consent_source or "cli")
    if counts.suppressed:
        raise ValidationError(f"{row.email} is suppressed (bounced, complained or erased)")
    return counts


@dataclass(frozen=True)
class SubscriberRow:
    """A subscriber on a list, as shown by `subscribers list`."""

    email: str
    name: str
    language: str | None
    status: str
    list: str
    created_at: str
    attributes: dict[str, Any]


def iter_subscribers(
    engine: Engine,
    *,
    list_slug: str | None = None,
    status: str | None = None,
    language: str | None = None,
    batch: int = 5000,
) -> Iterator[SubscriberRow]:
    """Stream subscriptions (subscriber x list), ordered by email, in bounded memory."""
    from newsletter.db.tables import LISTS

    s, c, lt = SUBSCRIBERS.c, SUBSCRIPTIONS.c, LISTS.c
    stmt = (
        select(s.email, s.name, s.language, s.attributes, s.created_at, c.status, lt.slug)
        .join(SUBSCRIPTIONS, c.subscriber_id == s.id)
        .join(LISTS, lt.id == c.list_id)
        .order_by(s.email, lt.slug)
    )
    if list_slug:
        stmt = stmt.where(c.list_id == get_list(engine, list_slug).id)
    if status:
        stmt = stmt.where(c.status == status)
    if language:
        stmt = stmt.where(s.language == language.lower())
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=batch).execute(stmt)
        for r in result:
            yield SubscriberRow(r.email, r.name, r.language, r.status, r.slug,
                                r.created_at.isoformat(), r.attributes or {})


def remove_subscriber(
    engine: Engine, *, email: str, address_key: str, list_slug: str | None = None
) -> str:
    """With a list: unsubscribe from it. Without: erase the person and suppress the address."""
    address = normalize_email(email)
    now = utcnow()
    if not list_slug:
        from newsletter.audience.erasure import erase  # erasure builds on this module

        erase(engine, email=address, address_key=address_key)
        return "erased"
    with engine.begin() as conn:
        s = SUBSCRIBERS.c
        sid = conn.scalar(select(s.id).where(s.email == address))
        if sid is None:
            raise NotFoundError(f"no subscriber {address}")
        lst = get_list(engine, list_slug)
        left = leave_list(conn, sid, lst.id, CLI, now, "cli")
        if not left and subscription(conn, sid, lst.id) is None:
            raise NotFoundError(f"{address} is not on list {lst.slug!r}")
        return "unsubscribed"  # already unsubscribed: nothing more to do
