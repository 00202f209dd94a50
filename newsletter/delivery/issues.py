"""An issue's life: draft -> sending (-> paused) -> sent, and what `issue status` reports.

The row is made as a draft on the first send and moves to sending in the transaction that
enqueues it (delivery/dispatch.begin_send); the run that delivers sets the final status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, func, insert, literal, select, update

from newsletter.db.models import utcnow
from newsletter.db.sender import write_tx
from newsletter.db.tables import DELIVERIES, ISSUES, SUBSCRIBERS
from newsletter.delivery.errors import SendError
from newsletter.delivery.queue import OPEN
from newsletter.delivery.retention import counts_by_language, rollup_of


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
    """What `issue status` shows; `rolled_up` is when its rows were rolled up (retention.py)."""

    slug: str
    status: str
    counts: dict[str, int]
    by_language: dict[str, dict[str, int]]
    last_errors: list[dict[str, Any]]
    rolled_up: str | None = None


def _rollup(conn: Connection, issue_id: int) -> dict[str, Any] | None:
    return rollup_of(conn.scalar(select(ISSUES.c.data).where(ISSUES.c.id == issue_id)))


def issue_status(engine: Engine, slug: str, errors: int = 10) -> IssueStatus | None:
    """Counts by status and language, and the latest replies that were not success.

    A rolled-up issue has no rows left: its counts are the ones stored at the roll-up.
    """
    from newsletter.db.models import DELIVERY_STATUSES

    with engine.connect() as conn:
        issue = find_issue(conn, slug)
        if issue is None:
            return None
        rollup = _rollup(conn, issue.id)
        found = rollup["by_language"] if rollup else counts_by_language(conn, issue.id)
        counts = dict.fromkeys(DELIVERY_STATUSES, 0)
        by_language: dict[str, dict[str, int]] = {}
        for lang, by_status in found.items():
            for status, n in by_status.items():
                counts[status] = counts.get(status, 0) + n
                by_language.setdefault(lang, dict.fromkeys(DELIVERY_STATUSES, 0))[status] = n
        last = [] if rollup else _last_errors(conn, issue.id, errors)
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
        rolled_up=rollup["at"] if rollup else None,
    )


def _last_errors(conn: Connection, issue_id: int, limit: int) -> list[Any]:
    return list(conn.execute(
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
            DELIVERIES.c.issue_id == issue_id,
            DELIVERIES.c.last_reply.is_not(None),
            DELIVERIES.c.status.in_(("failed", "deferred", "unknown")),
        )
        .order_by(DELIVERIES.c.id.desc())
        .limit(limit)
    ).all())


class IssueSummary(NamedTuple):
    """One line of `issue list`: status, deliveries by status, when it was rolled up."""

    status: str
    counts: dict[str, int]
    rolled_up: str | None = None


def issue_summaries(engine: Engine) -> dict[str, IssueSummary]:
    """Every issue row by slug, for `issue list`; a rolled-up issue gives its stored counts."""
    out: dict[str, IssueSummary] = {}
    with engine.connect() as conn:
        for slug, status, data in conn.execute(
                select(ISSUES.c.slug, ISSUES.c.status, ISSUES.c.data)):
            rollup = rollup_of(data)
            counts: dict[str, int] = {}
            for by_status in (rollup["by_language"] if rollup else {}).values():
                for key, n in by_status.items():
                    counts[key] = counts.get(key, 0) + n
            out[slug] = IssueSummary(status, counts, rollup["at"] if rollup else None)
        for slug, status, n in conn.execute(
            select(ISSUES.c.slug, DELIVERIES.c.status, func.count())
            .join(DELIVERIES, DELIVERIES.c.issue_id == ISSUES.c.id)
            .group_by(ISSUES.c.slug, DELIVERIES.c.status)
        ):
            if out[slug].rolled_up is None:  # else the stored counts already hold these rows
                out[slug].counts[status] = n
    return out


def mailed(conn: Connection, issue_id: int) -> int:
    """Deliveries of the issue that went out; refuses a rolled-up issue, whose rows are gone,
    so that no send (not even --force) can mail its list a second time."""
    rollup = _rollup(conn, issue_id)
    if rollup is not None:
        raise SendError(f"this issue was sent and rolled up on {rollup['at'][:10]}: who got it "
                        f"is no longer known, so it cannot be sent again (use a new slug)")
    return conn.execute(select(func.count()).where(
        DELIVERIES.c.issue_id == issue_id, DELIVERIES.c.status == "sent")).scalar_one()


def waiting_languages(conn: Connection, issue_id: int) -> list[str]:
    """The edition languages of the deliveries a send of the issue may still mail."""
    return list(conn.execute(
        select(DELIVERIES.c.language).distinct().where(
            DELIVERIES.c.issue_id == issue_id,
            DELIVERIES.c.status.in_((*OPEN, "sending", "unknown")))).scalars())
