"""Form requests answered first and processed after the answer, so its timing tells nothing.

A subscribe or "mail me my link" request used to do more or less database work depending on
whether the address was new, pending, confirmed, suppressed or unknown, and the answer's time
showed which (7 ms against 3 ms). Now every such request does the same work before it answers,
whatever the address: check the address's syntax and the network address's rate limit, then
write one job row. The row is processed after the response (a background task of the request)
and deleted by the transaction that does so; a row a crash left behind is processed by the
outbox worker's next pass (run_pending).

Job rows live in the outbox table with status "job", which is never due for sending, so no
schema change was needed; the recipient column holds the address and the message column the
request as JSON.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.exc import IntegrityError

from newsletter.audience.addresses import normalize_email
from newsletter.audience.audit import RequestMeta
from newsletter.audience.language import FALL_BACK, ListLanguages
from newsletter.audience.names import clean_name
from newsletter.audience.optin import (
    FORM_KINDS,
    OptIn,
    check_ip_limit,
    find_list,
    subscribe_in,
)
from newsletter.audience.preferences import preferences_link_in
from newsletter.db.models import utcnow
from newsletter.errors import NewsletterError
from newsletter.outbox import OUTBOX

log = logging.getLogger(__name__)

JOB = "job"  # the outbox status of a queued request: never sent, only processed
STALE = timedelta(seconds=30)  # older rows lost their background task (a crash): sweep them


def queue_subscribe(
    ctx: OptIn,
    *,
    list_slug: str,
    email: str,
    name: str,
    language: str,
    meta: RequestMeta,
    now: datetime | None = None,
) -> int:
    """Check a subscribe request and queue it as one job row; the same work for any address."""
    payload = {"list": list_slug, "name": clean_name(name), "language": language}
    return _queue(ctx, "subscribe-job", normalize_email(email), payload, meta, now)


def queue_preferences_link(
    ctx: OptIn, *, email: str, language: str, meta: RequestMeta, now: datetime | None = None
) -> int:
    """Check a "mail me my link" request and queue it as one job row, known address or not."""
    return _queue(ctx, "manage-job", normalize_email(email), {"language": language}, meta, now)


def _queue(
    ctx: OptIn,
    kind: str,
    email: str,
    payload: dict[str, Any],
    meta: RequestMeta,
    now: datetime | None,
) -> int:
    now = now or utcnow()
    request = {**payload, "at": now.isoformat(), "meta": asdict(meta)}
    with ctx.engine.begin() as conn:
        check_ip_limit(conn, FORM_KINDS, meta.ip, ctx.max_per_ip, now)
        values = {
            "kind": kind,
            "recipient": email,
            "sender": "",
            "message": json.dumps(request).encode(),
            "status": JOB,
            "attempts": 0,
            "created_at": now,
        }
        return int(conn.execute(OUTBOX.insert().values(**values)).inserted_primary_key[0])  # type: ignore[index]


def _subscribe(ctx: OptIn, conn: Connection, email: str, job: dict[str, Any]) -> str:
    mlist = find_list(conn, job["list"])
    language = ListLanguages.of(mlist).accept(job["language"], FALL_BACK)
    meta, now = RequestMeta(**job["meta"]), datetime.fromisoformat(job["at"])
    return subscribe_in(ctx, conn, mlist, email, job["name"], language, meta, now)[0]


def _preferences_link(ctx: OptIn, conn: Connection, email: str, job: dict[str, Any]) -> str:
    meta, now = RequestMeta(**job["meta"]), datetime.fromisoformat(job["at"])
    return preferences_link_in(ctx, conn, email, job["language"], meta, now)


RUNNERS: dict[str, Callable[[OptIn, Connection, str, dict[str, Any]], str]] = {
    "subscribe-job": _subscribe,
    "manage-job": _preferences_link,
}


def run_job(ctx: OptIn, job_id: int) -> str | None:
    """Process one queued request exactly once: its outcome, or None if it was already done."""
    try:
        return _run_once(ctx, job_id)
    except IntegrityError:
        return _run_once(ctx, job_id)  # two requests created one subscriber at once: again
    except NewsletterError as exc:
        # Nothing to do any more (e.g. the list was deleted meanwhile): drop the job, say why.
        log.warning("form request %s dropped: %s", job_id, exc)
        with ctx.engine.begin() as conn:
            conn.execute(delete(OUTBOX).where(OUTBOX.c.id == job_id, OUTBOX.c.status == JOB))
        return None


def _run_once(ctx: OptIn, job_id: int) -> str | None:
    mine = (OUTBOX.c.id == job_id) & (OUTBOX.c.status == JOB)
    with ctx.engine.begin() as conn:
        row = conn.execute(select(OUTBOX.c.kind, OUTBOX.c.recipient, OUTBOX.c.message)
                           .where(mine)).first()
        # Deleting first claims the row: a second runner's delete waits, then finds nothing.
        if row is None or conn.execute(delete(OUTBOX).where(mine)).rowcount != 1:
            return None
        return RUNNERS[row.kind](ctx, conn, row.recipient, json.loads(row.message))


def run_pending(ctx: OptIn, now: datetime | None = None, older_than: timedelta = STALE) -> int:
    """Process the job rows whose request's own background task never ran; how many."""
    since = (now or utcnow()) - older_than
    with ctx.engine.connect() as conn:
        ids = conn.execute(
            select(OUTBOX.c.id)
            .where(OUTBOX.c.status == JOB, OUTBOX.c.created_at <= since)
            .order_by(OUTBOX.c.id)
            .limit(100)
        ).scalars().all()
    return sum(run_job(ctx, job_id) is not None for job_id in ids)
