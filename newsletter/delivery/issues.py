"""An issue's life: draft -> sending (-> paused) -> sent, and what `issue status` reports.

The row is made as a draft on the first send and moves to sending in the transaction that
enqueues it (delivery/dispatch.begin_send); the run that delivers sets the final status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, literal, select, update

from newsletter.db.models import utcnow
from newsletter.db.sender import write_tx
from newsletter.db.tables import DELIVERIES, ISSUES, SUBSCRIBERS
from newsletter.delivery.queue import OPEN


@dataclass(frozen=True)
class IssueRow:
    id: int
    slug: str
    list_id: int
    status: str


def find_issue(conn: Connection, slug: str) -> IssueRow | None:
    row = conn.execute(
        select(ISSUES.c.id, ISSUES.c.slug, ISSUES.c.list_id, ISSUES.c.status).where(
            ISSUES.c.slug == slug
        )
    ).first()
    return IssueRow(*row) if row else None


def open_issue(conn: Connection, slug: str, list_id: int) -> IssueRow:
    """The issues row for a slug, created as a draft on first send."""
    found = find_issue(conn, slug)
    if found:
        return found
    conn.execute(
        insert(ISSUES).values(
            slug=slug, list_id=list_id, status="draft", created_at=utcnow(), data={}
        )
    )
    found = find_issue(conn, slug)
    assert found is not None  # just inserted in this transaction
    return found


def set_issue_status(conn: Connection, issue_id: int, status: str) -> None:
    values: dict[str, Any] = {"status": status}
    now = utcnow()
    if status == "sending":
        started = literal(now, ISSUES.c.started_at.type)
        values["started_at"] = func.coalesce(ISSUES.c.started_at, started)
    if status == "sent":
        values["sent_at"] = now
    conn.execute(update(ISSUES).where(ISSUES.c.id == issue_id).values(**values))


def remaining(engine: Engine, issue_id: int) -> int:
    """Rows not settled yet: queued, deferred or in flight."""
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(
                DELIVERIES.c.issue_id == issue_id, DELIVERIES.c.status.in_((*OPEN, "sending"))
            )
        ).scalar_one()


def finish(engine: Engine, issue_id: int, paused: bool = False) -> str:
    """sent when nothing is left to do, paused after Ctrl-C, else still sending."""
    left = remaining(engine, issue_id)
    status = "sent" if left == 0 else ("paused" if paused else "sending")
    with write_tx(engine) as conn, conn.begin():
        set_issue_status(conn, issue_id, status)
    return status


@dataclass(frozen=True)
class IssueStatus:
    """What `issue status` shows."""

    slug: str
    status: str
    counts: dict[str, int]
    by_language: dict[str, dict[str, int]]
    last_errors: list[dict[str, Any]]


def issue_status(engine: Engine, slug: str, errors: int = 10) -> IssueStatus | None:
    """Counts by status and language, and the latest replies that were not success."""
    from newsletter.db.models import DELIVERY_STATUSES

    with engine.connect() as conn:
        issue = find_issue(conn, slug)
        if issue is None:
            return None
        counts = dict.fromkeys(DELIVERY_STATUSES, 0)
        by_language: dict[str, dict[str, int]] = {}
        for lang, status, n in conn.execute(
            select(DELIVERIES.c.language, DELIVERIES.c.status, func.count())
            .where(DELIVERIES.c.issue_id == issue.id)
            .group_by(DELIVERIES.c.language, DELIVERIES.c.status)
        ):
            counts[status] = counts.get(status, 0) + n
            by_language.setdefault(lang, dict.fromkeys(DELIVERY_STATUSES, 0))[status] = n
        last = conn.execute(
            select(
                DELIVERIES.c.id,
                SUBSCRIBERS.c.email,
                DELIVERIES.c.language,
                DELIVERIES.c.status,
                DELIVERIES.c.attempts,
                DELIVERIES.c.last_reply,
            )
            .join(SUBSCRIBERS, SUBSCRIBERS.c.id == DELIVERIES.c.subscriber_id)
            .where(
                DELIVERIES.c.issue_id == issue.id,
                DELIVERIES.c.last_reply.is_not(None),
                DELIVERIES.c.status.in_(("failed", "deferred", "unknown")),
            )
            .order_by(DELIVERIES.c.id.desc())
            .limit(errors)
        ).all()
    return IssueStatus(
        slug=slug,
        status=issue.status,
        counts=counts,
        by_language=by_language,
        last_errors=[
            {
                "delivery_id": r.id,
                "email": r.email,
                "language": r.language,
                "status": r.status,
                "attempts": r.attempts,
                "reply": r.last_reply,
            }
            for r in last
        ],
    )


def issue_summaries(engine: Engine) -> dict[str, tuple[str, dict[str, int]]]:
    """Every issue row: slug -> (status, deliveries by status), for `issue list`."""
    out: dict[str, tuple[str, dict[str, int]]] = {}
    with engine.connect() as conn:
        for slug, status in conn.execute(select(ISSUES.c.slug, ISSUES.c.status)):
            out[slug] = (status, {})
        for slug, status, n in conn.execute(
            select(ISSUES.c.slug, DELIVERIES.c.status, func.count())
            .join(DELIVERIES, DELIVERIES.c.issue_id == ISSUES.c.id)
            .group_by(ISSUES.c.slug, DELIVERIES.c.status)
        ):
            out[slug][1][status] = n
    return out


def mailed(conn: Connection, issue_id: int) -> int:
    """Deliveries of the issue that went out."""
    return conn.execute(select(func.count()).where(
        DELIVERIES.c.issue_id == issue_id, DELIVERIES.c.status == "sent")).scalar_one()


def waiting_languages(conn: Connection, issue_id: int) -> list[str]:
    """The edition languages of the deliveries a send of the issue may still mail."""
    return list(conn.execute(
        select(DELIVERIES.c.language).distinct().where(
            DELIVERIES.c.issue_id == issue_id,
            DELIVERIES.c.status.in_((*OPEN, "sending", "unknown")))).scalars())
