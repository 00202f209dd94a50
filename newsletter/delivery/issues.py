"""An issue's life, and what `issue status` reports::

    draft -> (scheduled ->) sending <-> paused -> sent
    scheduled | sending | paused -> cancelled

The row is made as a draft on the first send and moves to sending (or scheduled, with its
time) in the transaction that enqueues the first chunk of its deliveries
(delivery/dispatch.begin_send). A worker promotes a scheduled issue whose time has come
(`promote_due`); whoever settles the last delivery sets it sent (`finish`), once the enqueue
has added every row (`issues.enqueuing` false). Pause, resume and cancel come from any host
(`control`): every status change is one conditional UPDATE, so two processes never undo each
other's move, and a worker that finishes never overwrites a pause or a cancel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, and_, exists, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.db.engine import is_sqlite
from newsletter.db.models import utcnow
from newsletter.db.sender import write_tx
from newsletter.db.tables import DELIVERIES, ISSUES, SUBSCRIBERS
from newsletter.delivery import issuedata
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
    """The issues row for a slug, created as a draft on first send. Two sends of a new issue
    started at the same moment both insert it: the second waits for the first's transaction
    and takes its row (ON CONFLICT DO NOTHING), then sees its editions and rows, and the
    enqueue adds only who is left (both send, each message once)."""
    found = find_issue(conn, slug)
    if found:
        return found
    conn.execute(
        _insert(conn)(ISSUES).values(
            slug=slug, list_id=list_id, status="draft", created_at=utcnow(), data={}
        ).on_conflict_do_nothing(index_elements=[ISSUES.c.slug])
    )
    found = find_issue(conn, slug)
    assert found is not None  # inserted in this transaction, or by the send it waited for
    return found


def _insert(conn: Connection) -> Any:
    """The dialect's INSERT, which has ON CONFLICT."""
    return sqlite.insert if is_sqlite(conn) else postgresql.insert


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
    """The issue's status once a run stopped: sent when a sending issue has nothing left,
    paused after Ctrl-C, else as it is. Safe when several workers finish at once, and never
    overwrites a pause or a cancel made meanwhile."""
    return settle(engine, issue_id, paused)[0]


def settle(engine: Engine, issue_id: int, paused: bool = False) -> tuple[str, bool]:
    """finish, and whether this very call moved the issue to sent (True for one caller only,
    however many workers finish at once: the one that rebuilds the archive)."""
    left = exists().where(DELIVERIES.c.issue_id == issue_id,
                          DELIVERIES.c.status.in_((*OPEN, "sending")))
    with write_tx(engine) as conn, conn.begin():
        moved = conn.execute(update(ISSUES).where(
            ISSUES.c.id == issue_id, ISSUES.c.status == "sending", ~ISSUES.c.enqueuing,
            ~left).values(status="sent", sent_at=utcnow())).rowcount == 1
        if paused:
            conn.execute(update(ISSUES).where(ISSUES.c.id == issue_id,
                                              ISSUES.c.status == "sending")
                         .values(status="paused"))
        return str(conn.scalar(select(ISSUES.c.status).where(ISSUES.c.id == issue_id))), moved


def status_of(engine: Engine, issue_id: int) -> str | None:
    """The issue's status now (the workers read it every second to obey pause and cancel)."""
    with engine.connect() as conn:
        return conn.scalar(select(ISSUES.c.status).where(ISSUES.c.id == issue_id))


def schedule(conn: Connection, issue_id: int, when: datetime, zone: str) -> None:
    """Mark an enqueued issue scheduled for `when` (UTC), given in time zone `zone`."""
    issuedata.merge(conn, issue_id, {"zone": zone}, status="scheduled", scheduled_at=when)


def promote_due(engine: Engine) -> list[int]:
    """Move every scheduled issue whose time has come to sending; their ids."""
    now = utcnow()
    due = and_(ISSUES.c.status == "scheduled", ISSUES.c.scheduled_at <= now)
    with write_tx(engine) as conn, conn.begin():
        ids = list(conn.execute(select(ISSUES.c.id).where(due)).scalars())
        if ids:
            conn.execute(update(ISSUES).where(ISSUES.c.id.in_(ids), due).values(
                status="sending", started_at=func.coalesce(
                    ISSUES.c.started_at, literal(now, ISSUES.c.started_at.type))))
    return ids


def sending_issues(engine: Engine) -> list[IssueRow]:
    """Every issue in the sending state, oldest first."""
    with engine.connect() as conn:
        return [IssueRow(*r) for r in conn.execute(
            select(ISSUES.c.id, ISSUES.c.slug, ISSUES.c.list_id, ISSUES.c.status)
            .where(ISSUES.c.status == "sending").order_by(ISSUES.c.id))]


def next_scheduled(engine: Engine) -> datetime | None:
    """When the earliest scheduled issue starts, or None."""
    with engine.connect() as conn:
        return conn.scalar(select(func.min(ISSUES.c.scheduled_at))
                           .where(ISSUES.c.status == "scheduled"))


@dataclass(frozen=True)
class IssueStatus:
    """What `issue status` shows; `rolled_up` is when its rows were rolled up (retention.py)."""

    slug: str
    status: str
    counts: dict[str, int]
    by_language: dict[str, dict[str, int]]
    last_errors: list[dict[str, Any]]
    rolled_up: str | None = None
    scheduled_at: datetime | None = None  # UTC
    zone: str | None = None  # the time zone the schedule was given in
    workers: list[dict[str, Any]] = field(default_factory=list)  # live workers on it


def _rollup(conn: Connection, issue_id: int) -> dict[str, Any] | None:
    return rollup_of(issuedata.read(conn, issue_id))


def issue_status(engine: Engine, slug: str, errors: int = 10) -> IssueStatus | None:
    """Counts by status and language, and the latest replies that were not success.

    A rolled-up issue has no rows left: its counts are the ones stored at the roll-up.
    """
    from newsletter.db.models import DELIVERY_STATUSES
    from newsletter.delivery.registry import on_issue

    with engine.connect() as conn:
        issue = find_issue(conn, slug)
        if issue is None:
            return None
        scheduled_at, data = conn.execute(select(ISSUES.c.scheduled_at, ISSUES.c.data)
                                          .where(ISSUES.c.id == issue.id)).one()
        rollup = rollup_of(data)
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
        scheduled_at=scheduled_at if issue.status == "scheduled" else None,
        zone=(data or {}).get("zone"),
        workers=[{"host": w.host, "pid": w.pid, "rate": w.rate, "sent": w.sent}
                 for w in on_issue(engine, issue.id)],
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


# ---------------------------------------------------------------- pause, resume, cancel

CANCELLED_REPLY = "skipped: the issue was cancelled"
CONTROL = {  # action -> (the states it applies to, the state it sets)
    "pause": (("sending",), "paused"),
    "resume": (("paused",), "sending"),
    "cancel": (("scheduled", "sending", "paused"), "cancelled"),
}
WHY_NOT = {
    "draft": "it has not been sent (`newsletter send {slug}` starts it)",
    "scheduled": "it is scheduled and not sending yet (cancel it, or let it start)",
    "sending": "it is sending",
    "paused": "it is paused",
    "sent": "it was sent",
    "cancelled": "it was cancelled",
}


def control(engine: Engine, slug: str, action: str) -> tuple[str, int]:
    """Pause, resume or cancel an issue from any host: (new status, deliveries skipped).

    Workers read the status every second: they stop claiming, finish and record the messages
    in flight and hand their other claims back. A cancel marks every delivery still waiting
    `skipped`, claimed or not (a worker's intent only takes rows still queued or deferred, so
    none of them goes out).
    """
    from newsletter.errors import NotFoundError

    allowed, target = CONTROL[action]
    with write_tx(engine) as conn, conn.begin():
        issue = find_issue(conn, slug)
        if issue is None:
            raise NotFoundError(f"issue {slug!r} has not been sent yet")
        moved = conn.execute(update(ISSUES).where(
            ISSUES.c.id == issue.id, ISSUES.c.status.in_(allowed)).values(status=target)).rowcount
        if not moved:
            why = WHY_NOT.get(issue.status, f"it is {issue.status}").format(slug=slug)
            raise SendError(f"cannot {action} issue {slug!r}: {why}")
    if action != "cancel":
        return target, 0
    skip_cancelled(engine, issue.id)
    return target, _skipped_by_cancel(engine, issue.id)


def _skipped_by_cancel(engine: Engine, issue_id: int) -> int:
    """The deliveries the cancel skipped, whether this process or a worker's sweep marked
    them (a worker may reach them first)."""
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(
            DELIVERIES.c.issue_id == issue_id, DELIVERIES.c.status == "skipped",
            DELIVERIES.c.last_reply == CANCELLED_REPLY)).scalar_one()


def skip_cancelled(engine: Engine, issue_id: int | None = None, wait: float = 5.0) -> int:
    """Mark the waiting deliveries of a cancelled issue (of every one: None) skipped.

    A worker's journal may be writing some of them at this instant: those are left for the
    next pass (PostgreSQL: FOR UPDATE SKIP LOCKED), so the cancel never waits on a worker's
    row locks nor deadlocks with them. Passes repeat for up to `wait` seconds while rows stay
    waiting; the workers also sweep cancelled issues at every tick.

    The cancelled issues are read first, and deliveries are touched only when there are some:
    the sweep runs at every worker's tick, nearly always for nothing, and as one statement
    its plan depended on the statistics of `deliveries` (planned on statistics taken while the
    table was empty, each worker's sweep took 23-55 s with 6,000 rows queued).
    """
    cancelled = select(ISSUES.c.id).where(ISSUES.c.status == "cancelled")
    if issue_id is not None:
        cancelled = cancelled.where(ISSUES.c.id == issue_id)
    with engine.connect() as conn:
        ids = list(conn.scalars(cancelled))
    if not ids:
        return 0
    waiting = select(DELIVERIES.c.id).where(
        DELIVERIES.c.issue_id.in_(ids), DELIVERIES.c.status.in_(OPEN))
    unlocked = waiting.with_for_update(skip_locked=True)
    skipped, deadline = 0, time.monotonic() + wait
    while True:
        with write_tx(engine) as conn, conn.begin():
            skipped += conn.execute(update(DELIVERIES).where(
                DELIVERIES.c.id.in_(unlocked.scalar_subquery())).values(
                status="skipped", worker=None, lease_until=None, last_reply=CANCELLED_REPLY)
            ).rowcount
            left = conn.execute(select(func.count()).select_from(
                waiting.subquery())).scalar_one()
        if not left or time.monotonic() > deadline:
            return skipped
        time.sleep(0.05)
