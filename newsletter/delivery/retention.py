"""Retention: roll up old issues, keeping their counts and dropping their per-recipient rows.

Deliveries grow as issues x subscribers. Once an issue has been sent long enough ago that
nobody will act on its rows (bounces arrive within days), `newsletter maintenance
--roll-up-after 180d` stores the issue's counts by language and status in the issue row's
`data` JSON, under "rollup", then deletes its delivery rows, a chunk per transaction.

`issue status` and `issue list` read the stored counts for a rolled-up issue (delivery/issues.py),
so the numbers shown before and after are equal; the archive reads editions, which stay. What
goes: who received the issue (a person's data export no longer lists it), the last SMTP replies,
and the link from a late bounce report to its delivery. Such an issue can never be sent again,
not even with --force: nobody could tell who already got it (issues.mailed refuses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select

from newsletter.db.models import utcnow
from newsletter.db.sender import write_tx
from newsletter.db.tables import DELIVERIES, ISSUES
from newsletter.delivery import issuedata
from newsletter.errors import ValidationError

UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}
DURATION = re.compile(r"\s*(\d{1,6})\s*([hdw])\s*")
CHUNK = 10_000  # delivery rows deleted per transaction


def parse_age(text: str) -> timedelta:
    """'180d', '26w', '12h' -> timedelta; anything else is one clear error."""
    match = DURATION.fullmatch(text or "")
    if not match or int(match[1]) == 0:
        raise ValidationError(f"--roll-up-after: {text!r} is not a duration; write a whole "
                              f"number and a unit h, d or w, e.g. 180d, 26w or 12h")
    return timedelta(seconds=int(match[1]) * UNITS[match[2]])


def rollup_of(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The roll-up stored in an issue row's data, None for an issue that still has its rows."""
    found = (data or {}).get("rollup")
    return found if isinstance(found, dict) else None


@dataclass(frozen=True)
class RolledIssue:
    slug: str
    sent_at: str
    deliveries: int  # rows deleted (or that would be)
    by_language: dict[str, dict[str, int]]


@dataclass(frozen=True)
class RollUpReport:
    cutoff: str
    dry_run: bool
    issues: list[RolledIssue] = field(default_factory=list)

    @property
    def deliveries(self) -> int:
        return sum(i.deliveries for i in self.issues)


def roll_up(engine: Engine, older_than: timedelta, *, dry_run: bool = False,
            now: datetime | None = None, chunk: int = CHUNK) -> RollUpReport:
    """Roll up every sent issue whose send ended more than `older_than` ago.

    The counts are stored first, in one transaction; the rows then go `chunk` at a time, so
    neither engine holds a long write lock (SQLite's would stop the web app's one-clicks). A
    run stopped between the two leaves an issue rolled up with rows left: `issue status`
    already shows its stored counts, and the next run deletes the rest.
    """
    now = now or utcnow()
    cutoff = now - older_than
    with engine.connect() as conn:
        due = conn.execute(
            select(ISSUES.c.id, ISSUES.c.slug, ISSUES.c.sent_at, ISSUES.c.data)
            .where(ISSUES.c.status == "sent", ISSUES.c.sent_at < cutoff)
            .order_by(ISSUES.c.sent_at, ISSUES.c.id)
        ).all()
    report = RollUpReport(cutoff=cutoff.isoformat(), dry_run=dry_run)
    for issue_id, slug, sent_at, data in due:
        stored = rollup_of(data)
        if stored is None:
            with write_tx(engine) as conn, conn.begin():
                counts = counts_by_language(conn, issue_id)
                if not dry_run:
                    issuedata.merge(conn, issue_id, {"rollup": {"at": now.isoformat(),
                                                                "by_language": counts}})
        else:
            counts = stored["by_language"]
        rows = _count_rows(engine, issue_id) if dry_run else _delete_rows(engine, issue_id, chunk)
        if stored is None or rows:
            report.issues.append(RolledIssue(slug, sent_at.isoformat(), rows, counts))
    return report


def counts_by_language(conn: Connection, issue_id: int) -> dict[str, dict[str, int]]:
    """{language: {status: n}} of an issue's delivery rows, zero counts left out."""
    out: dict[str, dict[str, int]] = {}
    for lang, status, n in conn.execute(
        select(DELIVERIES.c.language, DELIVERIES.c.status, func.count())
        .where(DELIVERIES.c.issue_id == issue_id)
        .group_by(DELIVERIES.c.language, DELIVERIES.c.status)
    ):
        out.setdefault(lang, {})[status] = n
    return out


def _count_rows(engine: Engine, issue_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(
            DELIVERIES.c.issue_id == issue_id)).scalar_one()


def _delete_rows(engine: Engine, issue_id: int, chunk: int) -> int:
    """Delete the issue's delivery rows, `chunk` per transaction (a bounce record's link to
    one becomes NULL: the foreign key says ON DELETE SET NULL)."""
    deleted = 0
    while True:
        ids = select(DELIVERIES.c.id).where(DELIVERIES.c.issue_id == issue_id).limit(chunk)
        with write_tx(engine) as conn, conn.begin():
            gone = conn.execute(delete(DELIVERIES).where(
                DELIVERIES.c.id.in_(ids.scalar_subquery()))).rowcount
        deleted += gone
        if gone < chunk:
            return deleted
