"""A subscriber's own data, as one JSON document (GDPR articles 15 and 20).

The web page's "Download my data" and `newsletter subscribers export-data` both call
`export_data`. Every query is bound to the one subscriber id, so the file holds nobody else's
data: no other subscriber, no address from a bounce report about someone else. The statements
the subscriber signed are matched by the signature's contact address.

A person who signed a statement but never subscribed has the same right of access: asked by
address (the CLI, or the web through the signature's own link, web/sign.py), the document
holds their signatures, with `subscriber` null and the subscriber's sections empty.
Deliveries of an issue rolled up by `maintenance --roll-up-after` are no longer kept, so they
are not listed (delivery/retention.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, select

from newsletter.audience.addresses import normalize_email
from newsletter.db.models import utcnow
from newsletter.db.tables import (
    DELIVERIES,
    EDITIONS,
    EVENTS,
    ISSUES,
    LISTS,
    REQUESTS,
    SIGNATURES,
    STATEMENTS,
    SUBSCRIBERS,
    SUBSCRIPTIONS,
)
from newsletter.errors import NotFoundError

FORMAT = "newsletter-personal-data/1"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _subscriber(conn: Connection, sid: int) -> dict[str, Any]:
    s = SUBSCRIBERS.c
    row = conn.execute(select(s.email, s.name, s.language, s.attributes, s.created_at,
                              s.updated_at).where(s.id == sid)).first()
    if row is None:
        raise NotFoundError("no such subscriber")
    return {"email": row.email, "name": row.name, "language": row.language,
            "attributes": row.attributes or {}, "created_at": _time(row.created_at),
            "updated_at": _time(row.updated_at)}


def _subscriptions(conn: Connection, sid: int) -> list[dict[str, Any]]:
    """Each subscription, with what it asked for while it is pending (None otherwise)."""
    c, lt, r = SUBSCRIPTIONS.c, LISTS.c, REQUESTS.c
    rows = conn.execute(
        select(lt.slug, lt.name, c.status, c.created_at, c.confirmed_at, c.unsubscribed_at,
               r.id.label("request"), r.language, r.name.label("requested_name"), r.source)
        .join(LISTS, lt.id == c.list_id)
        .outerjoin(REQUESTS, and_(r.subscriber_id == c.subscriber_id, r.list_id == c.list_id))
        .where(c.subscriber_id == sid).order_by(lt.slug))
    return [{"list": row.slug, "list_name": row.name, "status": row.status,
             "created_at": _time(row.created_at), "confirmed_at": _time(row.confirmed_at),
             "unsubscribed_at": _time(row.unsubscribed_at),
             "requested": None if row.request is None else {
                 "language": row.language, "name": row.requested_name, "source": row.source}}
            for row in rows]


def _events(conn: Connection, sid: int) -> list[dict[str, Any]]:
    e, lt = EVENTS.c, LISTS.c
    rows = conn.execute(
        select(e.kind, lt.slug, e.created_at, e.source, e.ip, e.user_agent, e.consent_text,
               e.data)
        .outerjoin(LISTS, lt.id == e.list_id).where(e.subscriber_id == sid)
        .order_by(e.created_at, e.id))
    return [{"kind": r.kind, "list": r.slug, "at": _time(r.created_at), "source": r.source,
             "ip": r.ip, "user_agent": r.user_agent, "consent_text": r.consent_text,
             "data": r.data or {}} for r in rows]


def _deliveries(conn: Connection, sid: int) -> list[dict[str, Any]]:
    d, i, ed, lt = DELIVERIES.c, ISSUES.c, EDITIONS.c, LISTS.c
    rows = conn.execute(
        select(i.slug, ed.subject, lt.slug.label("list"), d.language, d.status, d.created_at,
               d.sent_at)
        .join(ISSUES, i.id == d.issue_id).join(LISTS, lt.id == d.list_id)
        .outerjoin(EDITIONS, and_(ed.issue_id == d.issue_id, ed.language == d.language))
        .where(d.subscriber_id == sid).order_by(d.created_at, d.id))
    return [{"issue": r.slug, "subject": r.subject, "list": r.list, "language": r.language,
             "status": r.status, "queued_at": _time(r.created_at), "sent_at": _time(r.sent_at)}
            for r in rows]


def _signatures(conn: Connection, email: str) -> list[dict[str, Any]]:
    """The statements signed with this contact address, whatever their status."""
    g, st = SIGNATURES.c, STATEMENTS.c
    rows = conn.execute(
        select(st.slug, g.organisation, g.country, g.organisation_type, g.contact_name,
               g.contact_email, g.language, g.listed, g.status, g.created_at, g.verified_at,
               g.decided_at)
        .join(STATEMENTS, st.id == g.statement_id).where(g.contact_email == email)
        .order_by(g.created_at, g.id))
    return [{"statement": r.slug, "organisation": r.organisation, "country": r.country,
             "organisation_type": r.organisation_type, "contact_name": r.contact_name,
             "contact_email": r.contact_email, "language": r.language,
             "listed": r.listed, "status": r.status, "signed_at": _time(r.created_at),
             "verified_at": _time(r.verified_at), "decided_at": _time(r.decided_at)}
            for r in rows]


def export_data(
    engine: Engine, *, email: str | None = None, subscriber_id: int | None = None
) -> dict[str, Any]:
    """Everything kept about one person (a subscriber by address or id, or by address someone
    who only signed statements), as plain JSON-ready data."""
    with engine.connect() as conn:
        if subscriber_id is None:
            address = normalize_email(email or "")
            s = SUBSCRIBERS.c
            subscriber_id = conn.scalar(select(s.id).where(s.email == address))
            if subscriber_id is None:
                return _signer_only(conn, address)
        subscriber = _subscriber(conn, subscriber_id)
        return {
            "format": FORMAT,
            "exported_at": utcnow().isoformat(),
            "subscriber": subscriber,
            "subscriptions": _subscriptions(conn, subscriber_id),
            "consent_events": _events(conn, subscriber_id),
            "deliveries": _deliveries(conn, subscriber_id),
            "signatures": _signatures(conn, subscriber["email"]),
        }


def _signer_only(conn: Connection, address: str) -> dict[str, Any]:
    """The document of someone who signed statements with this address but never subscribed."""
    signatures = _signatures(conn, address)
    if not signatures:
        raise NotFoundError(f"no subscriber or signatory {address}")
    return {"format": FORMAT, "exported_at": utcnow().isoformat(), "subscriber": None,
            "subscriptions": [], "consent_events": [], "deliveries": [],
            "signatures": signatures}
