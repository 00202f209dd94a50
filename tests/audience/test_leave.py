"""Leaving a list is idempotent in the database itself, not only behind the web app's read.

The web app reads the status before it writes, but two one-click requests can race past that
read; then the UPDATE's own condition is all that keeps one unsubscribe to one audit event.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from newsletter.audience.listedits import add_list
from newsletter.audience.optin import RequestMeta
from newsletter.audience.subscribers import add_subscriber
from newsletter.audience.subscriptions import Leave, leave_list, leave_many
from newsletter.db.models import Event, Subscriber, Subscription, utcnow
from tests.conftest import akey

META = RequestMeta(ip="192.0.2.7", user_agent="test", source="one-click")


def _member(services, email: str = "leo@example.org") -> tuple[int, int]:
    lst = add_list(services.engine, slug="news", name="News", languages=["en"],
                   default_language="en")
    add_subscriber(services.engine, email=email, list_slug="news", address_key=akey(services),
                   confirmed=True, consent_source="test")
    with services.engine.connect() as conn:
        sid = conn.scalar(select(Subscriber.id).where(Subscriber.email == email))
    return sid, lst.id


def _state(services, sid: int, lid: int) -> tuple[str, object, int]:
    with services.engine.connect() as conn:
        status, left_at = conn.execute(
            select(Subscription.status, Subscription.unsubscribed_at).where(
                Subscription.subscriber_id == sid, Subscription.list_id == lid)).one()
        events = conn.execute(select(Event.id).where(Event.kind == "unsubscribe")).all()
    return status, left_at, len(events)


def test_two_racing_one_click_batches_record_one_unsubscribe(services) -> None:
    sid, lid = _member(services)
    first = utcnow()
    with services.engine.begin() as conn:
        assert leave_many(conn, [Leave(sid, lid, META, "one-click")], now=first) == [True]
    # The second request read "confirmed" before the first one's write: it writes too.
    with services.engine.begin() as conn:
        assert leave_many(conn, [Leave(sid, lid, META, "one-click")],
                          now=first + timedelta(seconds=5)) == [False]
    status, left_at, events = _state(services, sid, lid)
    assert status == "unsubscribed" and events == 1
    assert left_at is not None and abs((left_at.replace(tzinfo=None)
                                        - first.replace(tzinfo=None)).total_seconds()) < 1


def test_leaving_twice_through_one_list_records_one_unsubscribe(services) -> None:
    sid, lid = _member(services)
    now = utcnow()
    with services.engine.begin() as conn:
        assert leave_list(conn, sid, lid, META, now, "page") is True
    with services.engine.begin() as conn:
        assert leave_list(conn, sid, lid, META, now + timedelta(seconds=5), "page") is False
    status, _left_at, events = _state(services, sid, lid)
    assert status == "unsubscribed" and events == 1
