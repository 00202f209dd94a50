"""Double opt-in: subscribe (pending + consent + one confirmation mail) and confirm.

These functions take plain values and an OptIn context, never a request: the web app, the CLI
or a test call them alike. Every outcome is recorded in `events` (the consent trail), and every
mail goes through the outbox in the same transaction as the change that needs it. The
subscription's status moves through audience/subscriptions.py, which keeps what a pending
request asked for until the confirmation reads it.

What the caller shows must not depend on the outcome (new, pending, confirmed, suppressed,
throttled all look the same), so the result says what happened only for logs and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.audience import subscriptions
from newsletter.audience.addresses import normalize_email
from newsletter.audience.audit import RequestMeta, record_event
from newsletter.audience.language import FALL_BACK, ListLanguages
from newsletter.audience.names import clean_name
from newsletter.audience.notices import (
    Mailer,
    enqueue_confirmation,
    enqueue_welcome,
    list_name,
)
from newsletter.audience.subscribers import suppressed_hashes
from newsletter.config import Settings
from newsletter.db.models import utcnow
from newsletter.db.tables import EVENTS, LISTS, SUBSCRIBERS
from newsletter.errors import NewsletterError, NotFoundError
from newsletter.keyring import address_hash, link_signer, read_address_key
from newsletter.links import preferences_url
from newsletter.tokens import Signer, TokenError

IP_WINDOW = timedelta(hours=1)
FORM_KINDS = ("subscribe", "resend", "manage")  # events that count towards the per-IP limit


class RateLimited(NewsletterError):
    """Too many requests from one network address; try again later."""


class LinkExpired(TokenError):
    """A genuine confirmation link that is too old; it still says who and which list."""

    def __init__(self, subscriber_id: int, list_id: int) -> None:
        super().__init__("expired token")
        self.subscriber_id = subscriber_id
        self.list_id = list_id


@dataclass(frozen=True)
class OptIn:
    """What the opt-in and preference services need: database, signer, mails, limits."""

    engine: Engine
    signer: Signer
    mailer: Mailer
    base_url: str
    confirm_days: int = 7
    max_per_address: int = 3
    max_per_ip: int = 20
    welcome: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def address_key(self) -> str:
        """The key suppressions are hashed with; read on first use, so the app starts (and
        its health check answers) while the database is still down."""
        with self.engine.connect() as conn:
            return read_address_key(conn)

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine, mailer: Mailer) -> OptIn:
        web = settings.web
        return cls(
            engine=engine,
            signer=link_signer(settings),
            mailer=mailer,
            base_url=settings.newsletter.base_url,
            confirm_days=web.confirm_days,
            max_per_address=web.max_confirmations_per_address,
            max_per_ip=web.max_subscribes_per_ip,
            welcome=dict(web.welcome or {}),
        )


@dataclass(frozen=True)
class SubscribeResult:
    """What a subscribe did; the web answer must not depend on `outcome`."""

    outcome: str  # pending | confirmed | already | suppressed | throttled
    list_id: int
    list_name: str
    opt_in: str
    language: str
    subscriber_id: int | None = None


@dataclass(frozen=True)
class ConfirmResult:
    """What a confirmation did, and where the subscriber can manage it."""

    outcome: str  # confirmed | already | stale
    subscriber_id: int
    list_id: int
    list_name: str
    language: str | None
    preferences_url: str


def find_list(conn: Connection, slug: str) -> dict[str, Any]:
    """The list with this slug, or NotFoundError."""
    row = None
    if 0 < len(slug) <= 64:
        row = conn.execute(select(LISTS).where(LISTS.c.slug == slug)).mappings().first()
    if row is None:
        raise NotFoundError(f"no list {slug!r}")
    return dict(row)


def check_ip_limit(
    conn: Connection, kinds: tuple[str, ...], ip: str | None, limit: int, now: datetime
) -> None:
    """RateLimited when this IP made `limit` such requests in the last hour (any replica)."""
    if not ip or limit <= 0:
        return
    count = conn.execute(
        select(func.count()).where(
            EVENTS.c.kind.in_(kinds), EVENTS.c.ip == ip[:64], EVENTS.c.created_at >= now - IP_WINDOW
        )
    ).scalar_one()
    if count >= limit:
        raise RateLimited("too many requests from this network address")


def is_suppressed(conn: Connection, email: str, address_key: str) -> bool:
    """True when the address is on the suppression list (kept as a keyed hash)."""
    digest = address_hash(email, address_key)
    return digest in suppressed_hashes(conn, [digest])


def _subscriber(conn: Connection, email: str) -> dict[str, Any] | None:
    row = conn.execute(select(SUBSCRIBERS).where(SUBSCRIBERS.c.email == email)).mappings().first()
    return dict(row) if row else None


def subscribe_in(
    ctx: OptIn,
    conn: Connection,
    mlist: dict[str, Any],
    email: str,
    name: str,
    language: str,
    meta: RequestMeta,
    now: datetime,
) -> tuple[str, int | None]:
    """subscribe()'s work on a checked address, in the caller's transaction: (outcome, id)."""
    subscriber = _subscriber(conn, email)
    requested = {"lists": [mlist["slug"]], "language": language, "name": name}
    if is_suppressed(conn, email, ctx.address_key):
        sid = subscriber["id"] if subscriber else None
        # Nothing is done for a suppressed (perhaps erased) address, so nothing about the person
        # is kept either: no name, no referring URL (it may carry the address).
        record_event(
            conn, "subscribe", replace(meta, source=None), now, sid, mlist["id"],
            {"lists": requested["lists"], "language": language, "outcome": "suppressed"},
        )
        return "suppressed", sid
    if subscriber is None:
        sid = conn.execute(  # type: ignore[index]
            SUBSCRIBERS.insert().values(
                email=email,
                name=name,
                language=language,
                attributes={},
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        subscriber = {"id": sid, "email": email, "name": name, "language": language}
    elif not subscriptions.has_confirmed(conn, subscriber["id"]):
        # Nobody has proved this mailbox yet, so nothing is overwritten that anyone confirmed.
        changes = {"language": language, "updated_at": now}
        if name:
            changes["name"] = name
        conn.execute(
            update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == subscriber["id"]).values(**changes)
        )
        subscriber.update(changes)
    sid = subscriber["id"]
    current = subscriptions.subscription(conn, sid, mlist["id"])
    status = current["status"] if current else None
    if status == "confirmed":
        outcome = "already"
    elif mlist["opt_in"] == "single":
        subscriptions.confirm(conn, sid, mlist["id"], meta=meta, now=now,
                              data={"opt_in": "single"})
        # Their own language when the list offers it, else the one they just asked for.
        own = ListLanguages(ListLanguages.of(mlist).offered, language)
        enqueue_welcome(ctx, conn, subscriber, mlist, own.effective(subscriber.get("language")))
        outcome = "confirmed"
    else:
        sent = enqueue_confirmation(
            ctx, conn, subscriber, mlist, language, name or subscriber["name"], now
        )
        outcome = "pending" if sent else "throttled"
        wanted = subscriptions.Requested(language, name, "form")
        subscriptions.register(conn, sid, mlist["id"], wanted, status=status, meta=meta,
                               now=now, data={**requested, "outcome": outcome}, asked=sent)
        return outcome, sid
    record_event(conn, "subscribe", meta, now, sid, mlist["id"], {**requested, "outcome": outcome})
    return outcome, sid


def subscribe(
    ctx: OptIn,
    *,
    list_slug: str,
    email: str,
    name: str = "",
    language: str | None = None,
    meta: RequestMeta,
    now: datetime | None = None,
) -> SubscribeResult:
    """Record a subscription request with its consent and queue at most one confirmation mail."""
    now = now or utcnow()
    email = normalize_email(email)
    name = clean_name(name)
    for attempt in range(2):
        try:
            with ctx.engine.begin() as conn:
                mlist = find_list(conn, list_slug)
                lang = ListLanguages.of(mlist).accept(language, FALL_BACK)
                check_ip_limit(conn, FORM_KINDS, meta.ip, ctx.max_per_ip, now)
                outcome, sid = subscribe_in(ctx, conn, mlist, email, name, lang, meta, now)
        except IntegrityError:
            # Two requests created the same subscriber at once: the second one runs again.
            if attempt:
                raise
            continue
        return SubscribeResult(outcome, mlist["id"], mlist["name"], mlist["opt_in"], lang, sid)
    raise AssertionError("unreachable")  # pragma: no cover


def read_confirm_token(ctx: OptIn, token: str) -> tuple[int, int, int]:
    """(subscriber_id, list_id, issued_at) of a genuine, fresh token; LinkExpired or TokenError."""
    data = ctx.signer.verify("confirm", token)
    if len(data.values) != 2 or data.issued_at is None:
        raise TokenError("malformed token")
    sid, list_id = data.values
    age = utcnow().timestamp() - data.issued_at
    if age > ctx.confirm_days * 86400:
        raise LinkExpired(sid, list_id)
    return sid, list_id, data.issued_at


def confirm(
    ctx: OptIn, token: str, *, meta: RequestMeta, now: datetime | None = None
) -> ConfirmResult:
    """Confirm a pending subscription; a second use changes nothing and says so."""
    now = now or utcnow()
    sid, list_id, issued = read_confirm_token(ctx, token)
    with ctx.engine.begin() as conn:
        found = conn.execute(select(SUBSCRIBERS).where(SUBSCRIBERS.c.id == sid)).mappings().first()
        found_list = conn.execute(select(LISTS).where(LISTS.c.id == list_id)).mappings().first()
        current = subscriptions.subscription(conn, sid, list_id)
        if found is None or found_list is None or current is None:
            raise NotFoundError("this subscription no longer exists")
        subscriber, mlist = dict(found), dict(found_list)
        left_after = current["unsubscribed_at"] and current["unsubscribed_at"].timestamp() > issued
        if current["status"] == "confirmed":
            outcome = "already"
        elif current["status"] == "unsubscribed" and left_after:
            outcome = "stale"  # the link was used, then the subscriber left: do not undo that
        else:
            wanted = subscriptions.confirm(conn, sid, list_id, meta=meta, now=now,
                                           data={"opt_in": "double"})
            changes = wanted.changes() if wanted else {}
            if changes:
                conn.execute(update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == sid).values(**changes))
                subscriber.update(changes)
            enqueue_welcome(ctx, conn, subscriber, mlist,
                            ListLanguages.of(mlist).effective(subscriber["language"]))
            outcome = "confirmed"
    return ConfirmResult(
        outcome=outcome,
        subscriber_id=sid,
        list_id=list_id,
        list_name=list_name(mlist, ListLanguages.of(mlist).effective(subscriber["language"])),
        language=subscriber["language"],
        preferences_url=preferences_url(ctx.base_url, ctx.signer, sid, list_id),
    )


def resend_confirmation(
    ctx: OptIn, token: str, *, meta: RequestMeta, now: datetime | None = None
) -> tuple[str, str | None]:
    """Queue a fresh confirmation mail for a genuine (even expired) link; (list name, language)."""
    now = now or utcnow()
    data = ctx.signer.verify("confirm", token)
    if len(data.values) != 2:
        raise TokenError("malformed token")
    sid, list_id = data.values
    with ctx.engine.begin() as conn:
        check_ip_limit(conn, FORM_KINDS, meta.ip, ctx.max_per_ip, now)
        subscriber = (
            conn.execute(select(SUBSCRIBERS).where(SUBSCRIBERS.c.id == sid)).mappings().first()
        )
        mlist = conn.execute(select(LISTS).where(LISTS.c.id == list_id)).mappings().first()
        if subscriber is None or mlist is None:
            raise NotFoundError("this subscription no longer exists")
        current = subscriptions.subscription(conn, sid, list_id)
        language = ListLanguages.of(mlist).effective(subscriber["language"])
        outcome = "nothing"
        waiting = current is not None and current["status"] == "pending"
        if waiting and not is_suppressed(conn, subscriber["email"], ctx.address_key):
            sent = enqueue_confirmation(
                ctx, conn, dict(subscriber), dict(mlist), language, subscriber["name"], now
            )
            outcome = "pending" if sent else "throttled"
            if sent:
                subscriptions.mark_asked(conn, sid, list_id, now)
        record_event(conn, "resend", meta, now, sid, list_id, {"outcome": outcome})
    return list_name(dict(mlist), language), language
