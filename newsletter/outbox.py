"""The durable outbox for system mails (confirmation, welcome, preferences link).

A request never talks SMTP: it writes the finished message into the `outbox` table in the same
transaction as the change that needs it, and `deliver_outbox` sends it later. A failing relay
therefore loses nothing; the row is deferred with a growing wait and tried again.

The outbox is a second kind of queue beside an issue's deliveries, with the same lease
(`[smtp] lease`), the same retry curve (`plan.backoff` from `[smtp] retry_delay`) and the same
relays (`delivery/mailrun.py`: RelaySet and Slot, their limits and cool-down, shared with the
sends through the database).

Claiming is crash-safe and replica-safe: a worker claims due rows by pushing their
`next_attempt_at` forward by a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`; every backend: a
compare-and-set on the old value), so a dead worker's rows come back when the lease ends and two
workers never send the same row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, update
from starlette.concurrency import run_in_threadpool

from newsletter.config import Settings
from newsletter.db.engine import is_sqlite
from newsletter.db.models import utcnow
from newsletter.db.tables import OUTBOX
from newsletter.delivery.mailrun import Mail, MailRun
from newsletter.delivery.plan import backoff

log = logging.getLogger(__name__)

# The delivery queue's curve waits up to 6 h; a system mail waits at most an hour: someone
# who asked for a confirmation or a preferences link is waiting for it (and its link expires).
LONGEST_RETRY = 3600.0
GIVE_UP_AFTER = timedelta(days=3)
DUE_STATUSES = ("queued", "deferred")


@dataclass(frozen=True)
class OutboxReport:
    """What one pass of the worker did."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.deferred + self.failed


@dataclass(frozen=True)
class OutboxRow:
    """One outbox message without its bytes, for listing."""

    id: int
    kind: str
    recipient: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def enqueue(
    bind: Connection | Engine, kind: str, recipient: str, sender: str, message: bytes
) -> int:
    """Queue one finished message; pass the caller's Connection to share its transaction."""
    values = {
        "kind": kind,
        "recipient": recipient,
        "sender": sender,
        "message": message,
        "status": "queued",
        "attempts": 0,
        "created_at": utcnow(),
    }
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return enqueue(conn, kind, recipient, sender, message)
    result = bind.execute(OUTBOX.insert().values(**values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def count_recent(conn: Connection, kind: str, recipient: str, since: datetime) -> int:
    """How many mails of a kind went (or wait to go) to an address since a time."""
    query = select(func.count()).where(
        OUTBOX.c.kind == kind, OUTBOX.c.recipient == recipient, OUTBOX.c.created_at >= since
    )
    return int(conn.execute(query).scalar_one())


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    """Wait after the n-th failed attempt: the delivery queue's backoff, at most an hour."""
    return timedelta(seconds=backoff(attempts, settings.smtp.retry_delay, LONGEST_RETRY))


def _due(now: datetime, include_deferred: bool) -> Any:
    waiting = or_(OUTBOX.c.next_attempt_at.is_(None), OUTBOX.c.next_attempt_at <= now)
    if include_deferred:
        waiting = or_(waiting, OUTBOX.c.status == "deferred")
    return and_(OUTBOX.c.status.in_(DUE_STATUSES), waiting)


def claim(
    engine: Engine, now: datetime, limit: int, include_deferred: bool = False,
    lease: float = 300.0,
) -> list[dict[str, Any]]:
    """Lease up to `limit` due rows to this worker for `lease` seconds and return them."""
    query = select(OUTBOX).where(_due(now, include_deferred)).order_by(OUTBOX.c.id).limit(limit)
    if not is_sqlite(engine):
        query = query.with_for_update(skip_locked=True)
    claimed: list[dict[str, Any]] = []
    until = now + timedelta(seconds=lease)
    with engine.begin() as conn:
        for row in conn.execute(query).mappings().all():
            # Compare-and-set on the old lease: a second worker that read the same row loses.
            old = row["next_attempt_at"]
            same_lease = (
                OUTBOX.c.next_attempt_at.is_(None)
                if old is None
                else OUTBOX.c.next_attempt_at == old
            )
            result = conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id == row["id"], OUTBOX.c.status == row["status"], same_lease)
                .values(next_attempt_at=until, attempts=OUTBOX.c.attempts + 1)
            )
            if result.rowcount == 1:
                claimed.append({**row, "attempts": row["attempts"] + 1})
    return claimed


def record(
    settings: Settings, engine: Engine, outcomes: Sequence[tuple[dict[str, Any], str, str]],
    now: datetime,
) -> None:
    """Write each claimed row's outcome: sent, deferred (with its next time) or failed; a row
    handed `back` untried is as it was before the claim."""
    with engine.begin() as conn:
        for row, status, reply in outcomes:
            values: dict[str, Any] = {"status": status, "last_error": reply or None}
            if status == "back":
                values = {"next_attempt_at": row["next_attempt_at"],
                          "attempts": row["attempts"] - 1}
            elif status == "sent":
                values.update(sent_at=now, next_attempt_at=None, last_error=None)
            elif status == "deferred" and now - row["created_at"] >= GIVE_UP_AFTER:
                values["status"] = "failed"
                values["last_error"] = f"gave up after {row['attempts']} attempts: {reply}"
            elif status == "deferred":
                values["next_attempt_at"] = now + retry_delay(settings, row["attempts"])
            else:
                values["next_attempt_at"] = None
            conn.execute(update(OUTBOX).where(OUTBOX.c.id == row["id"]).values(**values))


async def deliver_outbox(
    settings: Settings,
    engine: Engine,
    *,
    now: datetime | None = None,
    limit: int = 100,
    include_deferred: bool = False,
    mails: MailRun | None = None,
) -> OutboxReport:
    """Send queued and due deferred mails once; safe to run from several processes at once.

    `mails`: the process's MailRun, kept from pass to pass (a new one otherwise, left at the
    end). While every relay is out (cooling down here or in the shared view, hourly limit
    spent) nothing is claimed: the mails wait.
    """
    if mails is None:
        mails = MailRun(settings)
        try:
            return await deliver_outbox(settings, engine, now=now, limit=limit,
                                        include_deferred=include_deferred, mails=mails)
        finally:
            await mails.leave()
    await mails.join(engine)
    if not mails.ready():
        return OutboxReport()
    moment = now or utcnow()
    rows = await run_in_threadpool(claim, engine, moment, limit, include_deferred,
                                   settings.smtp.lease)
    if not rows:
        return OutboxReport()
    sent = await mails.send([Mail(row["id"], row["sender"], row["recipient"],
                                  bytes(row["message"])) for row in rows], settings.smtp.lease)
    outcomes = [(row, status, reply) for row, (status, reply) in zip(rows, sent, strict=True)]
    await run_in_threadpool(record, settings, engine, outcomes, now or utcnow())
    for row, status, reply in outcomes:
        if status not in ("sent", "back"):
            log.warning("outbox %s to %s: %s (%s)", row["id"], row["recipient"], status, reply)
    counts = {s: sum(1 for _, st, _ in outcomes if st == s) for s in ("sent", "deferred", "failed")}
    return OutboxReport(**counts)


def list_outbox(engine: Engine, status: str | None = None, limit: int = 100) -> list[OutboxRow]:
    """The newest outbox rows (without message bytes), optionally of one status."""
    columns = [c for c in OUTBOX.c if c.name not in ("message", "sender")]
    query = select(*columns).order_by(OUTBOX.c.id.desc()).limit(limit)
    if status:
        query = query.where(OUTBOX.c.status == status)
    with engine.connect() as conn:
        return [OutboxRow(**dict(r)) for r in conn.execute(query).mappings()]


def backlog(engine: Engine) -> dict[str, int]:
    """How many outbox rows have each status (the health check's figure); raises when the
    database cannot be reached."""
    with engine.connect() as conn:
        rows = conn.execute(select(OUTBOX.c.status, func.count()).group_by(OUTBOX.c.status))
        return {status: count for status, count in rows}
