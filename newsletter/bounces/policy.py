"""What a bounce or complaint does to a subscriber (STANDARDS.md, "SMTP replies and bounces").

- hard: the address is suppressed at once, so no send, import or form reaches it again;
- soft (4.x.x, and x.2.2 "mailbox full"): counted; the address is suppressed once it has
  soft-bounced on `soft_limit` different deliveries within `soft_days` (5 in 7 by default).
  Several reports about one delivery (a relay's "still trying" notices) count once;
- complaint (ARF): the subscriber leaves the list of that delivery and the address is suppressed;
- policy (5.7.x) and unknown: recorded only. A block proves nothing about the address.

The subscriber is always the one of the delivery named by the HMAC'd VERP token, never an
address read from the report: anyone can write any address into a message. A report without a
valid token (or whose delivery no longer exists) is recorded as `bounce-unmatched`.

Every report becomes one row in `events` (kind `bounce`, `complaint` or `bounce-unmatched`),
whose `source` is `bounce:` plus a digest of the report's Message-ID (or of its bytes). That
digest makes processing idempotent: the same report seen twice, over SMTP or from a mailbox,
is recorded and counted once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, or_, select, update

from newsletter.audience.audit import RequestMeta, record_event
from newsletter.audience.subscribers import suppressed_hashes
from newsletter.audience.subscriptions import leave_list
from newsletter.bounces.report import BounceReport
from newsletter.config import ConfigError, Settings
from newsletter.db.models import Delivery, utcnow
from newsletter.db.tables import DELIVERIES, EVENTS, ISSUES, LISTS, SUBSCRIBERS, SUPPRESSIONS
from newsletter.keyring import address_hash

REPORT_EVENTS = ("bounce", "complaint", "bounce-unmatched")
ACTIONS = ("suppressed", "counted", "recorded", "unmatched", "unreadable", "kept", "duplicate")
BOUNCED = "bounced:"  # how a delivery's last_reply starts once a report named it
_NOTES = {"policy": "policy block: address kept", "autoreply": "auto-reply: address kept"}


@dataclass(frozen=True)
class BouncePolicy:
    """How many soft bounces, within how many days, suppress an address."""

    soft_limit: int = 5
    soft_days: float = 7.0

    @classmethod
    def from_settings(cls, settings: Settings) -> BouncePolicy:
        section = settings.bounces
        if section.soft_limit < 1:
            raise ConfigError("[bounces] soft_limit: must be at least 1")
        if section.soft_days <= 0:
            raise ConfigError("[bounces] soft_days: must be more than 0")
        return cls(soft_limit=section.soft_limit, soft_days=section.soft_days)


@dataclass(frozen=True)
class Outcome:
    """What processing one report did; `line()` is what `bounces serve` prints."""

    kind: str
    action: str  # one of ACTIONS
    note: str = ""
    delivery_id: int | None = None
    issue: str = ""
    address: str = ""  # masked
    status: str = ""
    unsubscribed: bool = False

    def line(self) -> str:
        delivery = f"delivery {self.delivery_id}" if self.delivery_id is not None else "-"
        parts = [f"{self.kind:<9}", f"{self.status or '-':<7}", f"{delivery:<16}",
                 f"{self.address or '-':<28}", self.action]
        if self.note:
            parts.append(f"({self.note})")
        return " ".join(parts)


def mask_address(address: str) -> str:
    """`amelie@example.net` -> `a***@example.net`: enough to recognise, not to harvest."""
    local, at, domain = (address or "").rpartition("@")
    if not at:
        return "***" if address else ""
    return f"{local[:1]}***@{domain}"


def report_key(data: bytes, digest: str = "") -> str:
    """A stable digest naming one report: its Message-ID, or its content when it has none.

    The content is the report's body and its From, Date and Subject: the trace headers a relay
    or a mailbox adds (Received, Delivered-To, Return-Path) do not make a second report.
    `data` may be only the report's head; `digest` (of the whole report) then stands in for
    a body that could not be read.
    """
    try:
        headers = BytesHeaderParser().parsebytes(data[:65536])
        message_id = headers.get("Message-ID")
        fields = [str(headers.get(h) or "") for h in ("From", "Date", "Subject")]
    except Exception:  # header parsing of arbitrary bytes; fall back to the bytes
        message_id, fields = None, []
    text = " ".join(str(message_id).split()) if message_id else ""
    if text:
        source = b"mid:" + text.encode("utf-8", "replace")
    else:
        split = re.search(rb"\r?\n\r?\n", data)
        body = data[split.end():] if split else b""
        named = "\n".join(" ".join(f.split()) for f in fields).encode("utf-8", "replace")
        source = b"content:" + named + b"\n" + (body or digest.encode() or data)
    return hashlib.sha256(source).hexdigest()[:32]


@dataclass(frozen=True)
class _Target:
    delivery_id: int
    subscriber_id: int
    list_id: int
    list_slug: str
    email: str
    issue: str
    sent_at: datetime | None


def _target(conn: Connection, delivery_id: int) -> _Target | None:
    d, s, i, lt = DELIVERIES.c, SUBSCRIBERS.c, ISSUES.c, LISTS.c
    row = conn.execute(
        select(d.id, d.subscriber_id, d.list_id, d.sent_at, s.email, i.slug,
               lt.slug.label("list_slug"))
        .join(SUBSCRIBERS, s.id == d.subscriber_id)
        .join(ISSUES, i.id == d.issue_id)
        .join(LISTS, lt.id == d.list_id)
        .where(d.id == delivery_id)
    ).first()
    if row is None:
        return None
    # Reports about one subscriber are applied one at a time (PostgreSQL; SQLite has one writer).
    conn.execute(select(s.id).where(s.id == row.subscriber_id).with_for_update()).first()
    return _Target(row.id, row.subscriber_id, row.list_id, row.list_slug, row.email, row.slug,
                   row.sent_at)


def _seen(conn: Connection, source: str, subscriber_id: int | None) -> bool:
    e = EVENTS.c
    query = select(e.id).where(e.source == source, e.kind.in_(REPORT_EVENTS))
    if subscriber_id is None:
        query = query.where(e.subscriber_id.is_(None))
    else:
        query = query.where(e.subscriber_id == subscriber_id)
    return conn.execute(query.limit(1)).first() is not None


def suppress(conn: Connection, email: str, address_key: str, reason: str, detail: str,
             now: datetime) -> bool:
    """Put an address on the suppression list; False when it already was."""
    digest = address_hash(email, address_key)
    if suppressed_hashes(conn, [digest]):
        return False
    conn.execute(insert(SUPPRESSIONS).values(
        email_hash=digest, reason=reason, detail=detail[:500], created_at=now))
    return True


def _last_success(conn: Connection, target: _Target) -> datetime | None:
    """When the last delivery before this one went out and never bounced (resets soft)."""
    d = DELIVERIES.c
    if target.sent_at is None:
        return None
    bounced = d.last_reply.like(f"{BOUNCED}%")
    return conn.scalar(select(func.max(d.sent_at)).where(
        d.subscriber_id == target.subscriber_id, d.status == "sent", d.id != target.delivery_id,
        d.sent_at < target.sent_at, or_(d.last_reply.is_(None), ~bounced)))


def _soft_count(conn: Connection, target: _Target, since: datetime) -> int:
    """Distinct deliveries that soft-bounced since `since` and since the last delivery that
    got through, this report's delivery included."""
    e, d = EVENTS.c, DELIVERIES.c
    rows = conn.execute(select(e.data).where(
        e.subscriber_id == target.subscriber_id, e.kind == "bounce", e.created_at >= since))
    found = {data.get("delivery") for data in rows.scalars() if (data or {}).get("kind") == "soft"}
    found.discard(target.delivery_id)
    success = _last_success(conn, target)
    if found and success is not None:
        found = set(conn.execute(select(d.id).where(
            d.id.in_(list(found)), d.sent_at > success)).scalars())
    return len(found) + 1


def mark_delivery(conn: Connection, delivery_id: int, report: BounceReport) -> None:
    """Note on the delivery row that it bounced, and how (its last reply from the world)."""
    words = f"{BOUNCED} {report.kind} {report.status} {report.diagnostic}"
    conn.execute(update(Delivery).where(Delivery.id == delivery_id)
                 .values(last_reply=" ".join(words.split())[:500]))


def _report_data(report: BounceReport, target: _Target | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": report.kind, "status": report.status, "action": report.action,
        "diagnostic": report.diagnostic, "format": report.source,
        "delivery": report.delivery_id, "reason": report.reason,
    }
    if target is not None:
        data["issue"] = target.issue
        data["list"] = target.list_slug
    else:
        data["recipients"] = [mask_address(r) for r in report.recipients[:10]]
    return data


def _decide(conn: Connection, report: BounceReport, target: _Target, address_key: str,
            policy: BouncePolicy, now: datetime) -> tuple[str, str, bool]:
    """Apply the policy to the delivery's subscriber: (action, note, unsubscribed)."""
    if report.kind == "complaint":
        meta = RequestMeta(source="complaint (ARF feedback report)")
        left = leave_list(conn, target.subscriber_id, target.list_id, meta, now, "complaint")
        fresh = suppress(conn, target.email, address_key, "complaint", report.diagnostic, now)
        note = f"unsubscribed from {target.list_slug}" if left else "not subscribed"
        return "suppressed", note + ("" if fresh else "; already suppressed"), left
    if report.kind == "hard":
        detail = f"{report.status} {report.diagnostic}".strip()
        fresh = suppress(conn, target.email, address_key, "bounce", detail, now)
        return "suppressed", "" if fresh else "already suppressed", False
    if report.kind == "soft":
        count = _soft_count(conn, target, now - timedelta(days=policy.soft_days))
        days = f"{policy.soft_days:g} days"
        if count >= policy.soft_limit:
            detail = f"{count} soft bounces within {days}"
            fresh = suppress(conn, target.email, address_key, "bounce", detail, now)
            return "suppressed", detail + ("" if fresh else "; already suppressed"), False
        return "counted", f"{count} of {policy.soft_limit} within {days}", False
    return "recorded", _NOTES.get(report.kind, ""), False


def apply_report(engine: Engine, report: BounceReport, *, key: str, address_key: str,
                 policy: BouncePolicy | None = None, now: datetime | None = None) -> Outcome:
    """Record one parsed report and apply the bounce policy, in one transaction."""
    policy = policy or BouncePolicy()
    now = now or utcnow()
    source = f"bounce:{key}"
    with engine.begin() as conn:
        target = _target(conn, report.delivery_id) if report.delivery_id is not None else None
        sid = target.subscriber_id if target else None
        shown = target.email if target else (report.recipients or ("",))[0]
        base = Outcome(kind=report.kind, action="recorded", delivery_id=report.delivery_id,
                       status=report.status, issue=target.issue if target else "",
                       address=mask_address(shown))
        if _seen(conn, source, sid):
            return replace(base, action="duplicate", note="report already processed")
        data = _report_data(report, target)
        meta = RequestMeta(source=source)
        if report.kind == "unreadable":
            record_event(conn, "bounce-unmatched", meta, now, None, None,
                         {**data, "outcome": "unreadable", "note": report.diagnostic})
            return replace(base, action="unreadable", note=report.diagnostic)
        if target is None:
            why = "no valid VERP token" if report.delivery_id is None else "delivery not found"
            record_event(conn, "bounce-unmatched", meta, now, None, None,
                         {**data, "outcome": "unmatched", "note": why})
            return replace(base, action="unmatched", note=why)
        action, note, left = _decide(conn, report, target, address_key, policy, now)
        if report.kind in ("hard", "soft", "policy", "complaint"):
            mark_delivery(conn, target.delivery_id, report)
        event = "complaint" if report.kind == "complaint" else "bounce"
        record_event(conn, event, meta, now, sid, target.list_id,
                     {**data, "outcome": action, "note": note})
        return replace(base, action=action, note=note, unsubscribed=left)


@dataclass(frozen=True)
class ReportRow:
    """One processed report, as `bounces list` shows it."""

    at: datetime
    event: str
    kind: str
    status: str
    issue: str
    address: str
    outcome: str
    note: str
    diagnostic: str


def recent_reports(engine: Engine, since: datetime, limit: int = 1000) -> list[ReportRow]:
    """Reports processed since a time, newest first."""
    e, s = EVENTS.c, SUBSCRIBERS.c
    query = (select(e.created_at, e.kind, e.data, s.email)
             .outerjoin(SUBSCRIBERS, s.id == e.subscriber_id)
             .where(e.kind.in_(REPORT_EVENTS), e.created_at >= since)
             .order_by(e.created_at.desc(), e.id.desc()).limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    out = []
    for row in rows:
        data = row.data or {}
        address = mask_address(row.email) if row.email else ", ".join(data.get("recipients", []))
        out.append(ReportRow(
            at=row.created_at, event=row.kind, kind=str(data.get("kind", "")),
            status=str(data.get("status", "")), issue=str(data.get("issue", "")),
            address=address, outcome=str(data.get("outcome", "")),
            note=str(data.get("note", "")), diagnostic=str(data.get("diagnostic", ""))))
    return out
