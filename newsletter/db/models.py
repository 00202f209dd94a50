"""The data model. Status values are plain strings, listed in the *_STATUSES tuples.

Deliveries are unique per issue x subscriber: that constraint is what makes "at most one copy"
enforceable by the database rather than by the sender's memory.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

CLOCK_FILE_ENV = "NEWSLETTER_CLOCK_FILE"
_clock: tuple[str, float, timedelta | datetime] | None = None  # (path, mtime, shift or time)


def utcnow() -> datetime:
    """Timezone-aware current time in UTC: the one "now" of the package.

    Tests only: when NEWSLETTER_CLOCK_FILE names a file, it moves this clock in every process
    that reads it. The file holds a number of seconds added to the real time ("3600"), or an
    ISO timestamp with its offset, which stops the clock there. It is read again when it
    changes, so a test moves the clock of running workers without sleeping.
    """
    real = datetime.now(UTC)
    path = os.environ.get(CLOCK_FILE_ENV)
    if not path:
        return real
    moved = _clock_setting(path)
    if isinstance(moved, datetime):
        return moved
    return real + moved


def _clock_setting(path: str) -> timedelta | datetime:
    """The shift or the fixed time the clock file holds (cached until the file changes)."""
    global _clock
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return timedelta()
    if _clock is not None and _clock[:2] == (path, mtime):
        return _clock[2]
    with open(path, encoding="utf-8") as fh:
        text = fh.read().strip()
    try:
        value: timedelta | datetime = timedelta(seconds=float(text or 0))
    except ValueError:
        value = datetime.fromisoformat(text).astimezone(UTC)
    _clock = (path, mtime, value)
    return value


class UTCDateTime(TypeDecorator):
    """Store naive UTC, hand back aware UTC, on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


SUBSCRIPTION_STATUSES = ("pending", "confirmed", "unsubscribed")
ISSUE_STATUSES = ("draft", "scheduled", "sending", "paused", "sent", "cancelled")
DELIVERY_STATUSES = ("queued", "sending", "sent", "deferred", "failed", "skipped", "unknown")
OUTBOX_STATUSES = ("queued", "sent", "deferred", "failed", "job")  # job: audience/jobs.py
# pending_verification -> verified -> approved | rejected (statements/signatures.py)
SIGNATURE_STATUSES = ("pending_verification", "verified", "approved", "rejected")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class MailingList(Base):
    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    default_language: Mapped[str] = mapped_column(String(16))
    languages: Mapped[list[str]] = mapped_column(JSON)
    opt_in: Mapped[str] = mapped_column(String(16), default="double")
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # {language: text} when given per language; name/description hold the default language's.
    names: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    descriptions: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "list_id"),
        Index("ix_subscriptions_list_status", "list_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SubscriptionRequest(Base):
    """What a pending subscription asked for, read when it is confirmed; gone once it is
    confirmed or left. NULL language and empty name: nothing beyond what the subscriber row
    holds (`subscribers add` and import set those directly). `asked_at`: when a confirmation
    mail was last queued for it, NULL while nobody has asked the person (`subscribers invite`
    asks those)."""

    __tablename__ = "subscription_requests"
    __table_args__ = (UniqueConstraint("subscriber_id", "list_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    asked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Event(Base):
    """Consent and audit trail: who did what, when, from where, under which text."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_subscriber", "subscriber_id"),
        Index("ix_events_ip", "ip", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), nullable=True
    )
    list_id: Mapped[int | None] = mapped_column(
        ForeignKey("lists.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    source: Mapped[str | None] = mapped_column(String(512), nullable=True)
    consent_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class KeyringEntry(Base):
    """A key kept in the database so every host shares it (see newsletter.keyring)."""

    __tablename__ = "keyring"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Suppression(Base):
    """An address never to be mailed, kept only as a keyed hash (HMAC with the address key)."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Issue(Base):
    __tablename__ = "issues"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(128), unique=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # {"letterhead": ...} the sender identity snapshot at enqueue (delivery/letterhead.py),
    # {"zone": ...} the time zone a scheduled send was given in.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # When a `scheduled` issue starts sending (UTC); NULL for any other.
    scheduled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # True while an enqueue is still adding this issue's deliveries, chunk by chunk
    # (delivery/dispatch.py): the workers send the rows already there, and nobody sets the
    # issue sent until the last chunk clears it.
    enqueuing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Edition(Base):
    """One language of an issue as it was sent: the workers mail it, the archive shows it."""

    __tablename__ = "editions"
    __table_args__ = (UniqueConstraint("issue_id", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    preheader: Mapped[str] = mapped_column(Text, default="")
    issue_date: Mapped[str] = mapped_column(String(32), default="")
    volume: Mapped[str] = mapped_column(String(32), default="")
    number: Mapped[str] = mapped_column(String(32), default="")
    web_html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The compiled edition as JSON (CompiledEdition.to_json), stored at enqueue: the send
    # workers build every message from it. NULL for issues enqueued before migration 0006.
    compiled: Mapped[str | None] = mapped_column(Text, nullable=True)


class Delivery(Base):
    """One issue to one subscriber. See newsletter/delivery for the state machine."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("issue_id", "subscriber_id"),
        # PostgreSQL: sent rows are left out, and the table has fillfactor 40, so that a
        # send's updates of a row stay in its page (migration 0012 says why).
        Index("ix_deliveries_claim", "issue_id", "status", "next_attempt_at",
              postgresql_where=text("status <> 'sent'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    language: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)


class WorkerRow(Base):
    """A running `newsletter worker` (delivery/registry.py): registered at start, refreshed
    about every second, deleted when it stops; a row whose heartbeat stopped is a dead worker."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # liveness.worker_name()
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    issue_id: Mapped[int | None] = mapped_column(
        ForeignKey("issues.id", ondelete="SET NULL"), nullable=True
    )
    sent: Mapped[int] = mapped_column(Integer, default=0)
    rate: Mapped[float] = mapped_column(Float, default=0.0)


class RelayStateRow(Base):
    """One relay of `[[smtp.relays]]` as every worker sees it (delivery/relayview.py): out of
    the send until `out_until` (UTC) and why, after a worker took it out for the cool-down."""

    __tablename__ = "relay_state"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # its name, or host:port
    out_until: Mapped[datetime | None] = mapped_column(nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RelayHourRow(Base):
    """Messages counted against one relay's `hourly` limit in one UTC hour (hours since
    1970), by every worker and run: sent, plus what live workers reserved and have not sent."""

    __tablename__ = "relay_hours"

    relay: Mapped[str] = mapped_column(String(255), primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    sent: Mapped[int] = mapped_column(Integer, default=0)


class OutboxMessage(Base):
    """A system mail (confirmation, welcome) waiting for SMTP; survives a failing relay."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status", "status", "next_attempt_at"),
        Index("ix_outbox_recipient", "recipient", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(320))
    sender: Mapped[str] = mapped_column(String(320))
    message: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)


class BounceRecord(Base):
    __tablename__ = "bounces"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), nullable=True
    )
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), nullable=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Statement(Base):
    """A sign-on statement (statements/<slug>/<lang>.md): its dates and cap as last read."""

    __tablename__ = "statements"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(128), unique=True)
    opens_at: Mapped[datetime | None] = mapped_column(nullable=True)
    closes_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cap: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Signature(Base):
    """One organisation signing a statement; public only once approved and listed.
    `organisation_key` is the name folded (case, accents, spaces) to find duplicates."""

    __tablename__ = "signatures"
    __table_args__ = (
        UniqueConstraint("statement_id", "organisation_key", "contact_email"),
        Index("ix_signatures_statement_status", "statement_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id", ondelete="CASCADE"))
    organisation: Mapped[str] = mapped_column(String(300))
    organisation_key: Mapped[str] = mapped_column(String(300))
    country: Mapped[str] = mapped_column(String(2))
    organisation_type: Mapped[str] = mapped_column(String(32))
    contact_name: Mapped[str] = mapped_column(String(200))
    contact_email: Mapped[str] = mapped_column(String(320))
    language: Mapped[str] = mapped_column(String(16))
    listed: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(24), default="pending_verification")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(nullable=True)
