"""What a subscriber changes through a personal link: language, name, lists, leaving.

The link's token proves the mailbox (it only ever travels in mail to that address), so adding a
public list here confirms it at once. Every change is written to `events` with its old and new
values. Unsubscribing is immediate and idempotent: a repeat finds nothing to change.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, or_, select, true, update

from newsletter.audience.addresses import normalize_email
from newsletter.audience.audit import RequestMeta, record_event
from newsletter.audience.language import (
    REJECT,
    ListLanguages,
    effective_language,
    list_languages,
)
from newsletter.audience.lists import list_text
from newsletter.audience.names import clean_name
from newsletter.audience.notices import ADDRESS_WINDOW
from newsletter.audience.optin import FORM_KINDS, OptIn, check_ip_limit, is_suppressed
from newsletter.audience.subscriptions import confirm, leave_list
from newsletter.db.models import utcnow
from newsletter.db.tables import LISTS, SUBSCRIBERS, SUBSCRIPTIONS
from newsletter.errors import NotFoundError, ValidationError
from newsletter.links import preferences_url
from newsletter.outbox import count_recent, enqueue

T = TypeVar("T")


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
# audience/hotreads.py compiles the same three to the driver's own SQL.
SUBSCRIBER_ROW = select(
    SUBSCRIBERS.c.id, SUBSCRIBERS.c.email, SUBSCRIBERS.c.name, SUBSCRIBERS.c.language
).where(SUBSCRIBERS.c.id == bindparam("sid"))
# One row per list the subscriber may choose (public, the link's own, or already theirs),
# with the subscriber's own columns repeated: one round trip for the whole page.
CHOICES = (
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
MEMBERSHIP = (
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
@dataclass(frozen=True)
class Membership:
    """A subscriber and one list, as a page about them needs it."""

    language: str | None
    default_language: str
    list_name: str
    status: str | None  # None: no subscription row


def membership(conn: Connection, subscriber_id: int, list_id: int) -> Membership | None:
    """The subscriber's language, the list's default and name, the status; None when gone."""
    row = conn.execute(MEMBERSHIP, {"sid": subscriber_id, "lid": list_id}).first()
    return membership_of(row) if row else None


def membership_of(row: Sequence[Any]) -> Membership:
    """Membership from a MEMBERSHIP row, the list's name in the subscriber's language."""
    return _membership(tuple(row))


# What a row gives, made once per process for each distinct row when its values are hashable
# (JSON columns as text: the fast paths' rows). Rows differ only by the few lists, statuses and
# languages, not by subscriber, so the caches stay small; their size guards the unforeseen.
CACHE_SIZE = 4096


def _per_row(make: Callable[[tuple[Any, ...]], T]) -> Callable[[tuple[Any, ...]], T]:
    """`make`, remembered for each distinct hashable row."""
    remembered = lru_cache(maxsize=CACHE_SIZE)(make)

    def made(row: tuple[Any, ...]) -> T:
        try:
            return remembered(row)
        except TypeError:  # a parsed JSON column (SQLAlchemy's rows): nothing to look up
            return make(row)

    return made


@_per_row
def _membership(row: tuple[Any, ...]) -> Membership:
    language, default, name, status, names, languages = row
    reads = effective_language(language, languages, default)
    return Membership(language, default, list_text(names, name, reads, default), status)


def load_preferences(conn: Connection, subscriber_id: int, list_id: int) -> PreferencesView:
    """The subscriber's data and the lists they may choose: public ones, the link's, their own."""
    rows = conn.execute(CHOICES, {"sid": subscriber_id, "lid": list_id}).all()
    alone = None if rows else conn.execute(SUBSCRIBER_ROW, {"sid": subscriber_id}).first()
    return view_of(subscriber_id, rows, alone)


def view_of(
    subscriber_id: int, rows: Sequence[Any], alone: Sequence[Any] | None
) -> PreferencesView:
    """PreferencesView from CHOICES rows, or from the SUBSCRIBER_ROW row when no list is offered."""
    if rows:
        email, name, language = rows[0][0], rows[0][1], rows[0][2]
    elif alone is None:
        raise NotFoundError("this subscriber no longer exists")
    else:  # no list to show at all: the subscriber alone
        email, name, language = alone[1], alone[2], alone[3]
    return PreferencesView(subscriber_id, email, name, language,
                           tuple([_choice((language, *r[3:])) for r in rows]))


@_per_row
def _choice(key: tuple[Any, ...]) -> ListChoice:
    """A CHOICES row's list columns, after the subscriber's language, as a ListChoice: name
    and description in the language the subscriber reads the list in."""
    language, list_id, slug, name, description, status, default, names, descriptions, \
        languages = key
    offered = list_languages(languages, default, slug)
    reads = offered.effective(language)
    return ListChoice(list_id, slug, list_text(names, name, reads, default),
                      list_text(descriptions, description or "", reads, default),
                      status == "confirmed", status, offered)


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
                # The link proves the mailbox: the list is confirmed at once.
                confirm(conn, subscriber_id, choice.id, meta=meta, now=now, kind="subscribe",
                        data={"lists": [choice.slug], "outcome": "confirmed",
                              "via": "preferences"})
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
