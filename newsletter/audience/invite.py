"""Confirmation mails for people the editors added (`subscribers add`, `subscribers import`).

A person added without `--confirmed` is pending: they get nothing until they confirm, so they
must be asked. The web form asks at once; for the CLI this module does it, by queueing the same
confirmation mail in the outbox (sent by `newsletter serve`, or `newsletter outbox send`).

Whom to ask: pending subscriptions of a list that were never asked, that is whose request in
`subscription_requests` has no `asked_at` (audience/subscriptions.py sets it whenever a
confirmation mail is queued: here, on the form, or a resent link). Each mail queued here sets it
too, so asking twice never mails anyone twice, and is recorded as an "invite" audit event. The
per-address limit of confirmation mails a day applies as on the form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select

from newsletter.audience.audit import RequestMeta, record_event
from newsletter.audience.language import ListLanguages
from newsletter.audience.notices import enqueue_confirmation
from newsletter.audience.optin import OptIn, find_list
from newsletter.audience.subscriptions import mark_asked
from newsletter.db.models import Subscriber, Subscription, utcnow
from newsletter.db.tables import REQUESTS

BATCH = 500
CLI = RequestMeta(source="cli")


@dataclass(frozen=True)
class InviteReport:
    """What an invite run did."""

    queued: int = 0
    throttled: int = 0  # had their confirmation mails for today already

    def as_dict(self) -> dict[str, int]:
        return {"queued": self.queued, "throttled": self.throttled}


def _never_asked(list_id: int, added_since: datetime | None) -> Any:
    """Pending subscribers of a list never asked to confirm (added since a time, if given).

    A pending subscription without a request row counts as never asked: the audit trail is not
    read back. Every pending subscription has its request: register and merge write one,
    migration 0005 gave one to each pending subscription of its day, and 0007 filled `asked_at`
    from their "invite", "subscribe" or "confirm" events (and wrote a request for any pending
    one with such an event but none). So only a row written outside the workflow lacks it, and
    asking it writes its request (subscriptions.mark_asked): it is asked once.
    """
    request = and_(REQUESTS.c.subscriber_id == Subscription.subscriber_id,
                   REQUESTS.c.list_id == list_id)
    query = (select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.language)
             .join(Subscription, Subscription.subscriber_id == Subscriber.id)
             .outerjoin(REQUESTS, request)
             .where(Subscription.list_id == list_id, Subscription.status == "pending",
                    REQUESTS.c.asked_at.is_(None))
             .order_by(Subscriber.id))
    if added_since is not None:  # the run that added them wrote their request
        query = query.where(REQUESTS.c.created_at >= added_since)
    return query


def _ask(ctx: OptIn, conn: Connection, mlist: dict[str, Any], languages: ListLanguages,
         person: Any, now: datetime) -> bool:
    subscriber = {"id": person.id, "email": person.email, "name": person.name}
    language = languages.effective(person.language)
    sent = enqueue_confirmation(ctx, conn, subscriber, mlist, language, person.name, now)
    if sent:
        mark_asked(conn, person.id, mlist["id"], now)
        record_event(conn, "invite", CLI, now, person.id, mlist["id"], {"language": language})
    return sent


def invite_pending(ctx: OptIn, list_slug: str, *, added_since: datetime | None = None,
                   progress: Callable[[int], None] | None = None) -> InviteReport:
    """Queue a confirmation mail for each pending subscriber of a list never asked.

    People are read in batches in id order (keyset), so a list of any size holds one batch in
    memory, and each batch commits on its own.
    """
    queued = throttled = 0
    with ctx.engine.connect() as conn:
        mlist = find_list(conn, list_slug)
    query = _never_asked(mlist["id"], added_since)
    languages = ListLanguages.of(mlist)
    last = 0
    while True:
        now = utcnow()
        with ctx.engine.begin() as conn:
            people = conn.execute(query.where(Subscriber.id > last).limit(BATCH)).all()
            for person in people:
                if _ask(ctx, conn, mlist, languages, person, now):
                    queued += 1
                else:
                    throttled += 1
        if not people:
            return InviteReport(queued, throttled)
        last = people[-1].id
        if progress:
            progress(len(people))


def count_never_asked(ctx: OptIn, list_slug: str) -> int:
    """How many pending subscribers of a list were never asked to confirm."""
    with ctx.engine.connect() as conn:
        mlist = find_list(conn, list_slug)
        never_asked = _never_asked(mlist["id"], None).order_by(None).subquery()
        return conn.execute(select(func.count()).select_from(never_asked)).scalar_one()
