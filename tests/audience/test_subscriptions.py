"""The subscription workflow at the service level: register, confirm, leave.

Each move writes one audit event, leaving is idempotent whichever door it comes through, and a
pending request's language and name are kept in `subscription_requests`, not read back from the
audit trail.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from newsletter.audience.audit import RequestMeta
from newsletter.audience.erasure import purge_pending
from newsletter.audience.importer import import_csv
from newsletter.audience.optin import confirm, subscribe
from newsletter.audience.portability import export_data
from newsletter.audience.subscribers import add_subscriber, remove_subscriber
from newsletter.audience.subscriptions import (
    Requested,
    leave_list,
    register,
    requested,
)
from newsletter.audience.subscriptions import (
    confirm as confirm_subscription,
)
from newsletter.db.models import Event, Subscriber, SubscriptionRequest, utcnow
from newsletter.links import confirm_url
from tests.audience.conftest import write
from tests.audience.optin_support import (
    events,
    optin,
    rows,
    subscriber,
    subscription,
    three_language_list,
)
from tests.conftest import akey

FORM = RequestMeta(ip="192.0.2.1", user_agent="test", source="https://example.org/join")
CLICK = RequestMeta(ip="192.0.2.2", user_agent="test")


def _requests(engine: Any) -> list[dict[str, Any]]:
    return rows(engine, SubscriptionRequest)


def _token(ctx: Any, sid: int, list_id: int) -> str:
    return confirm_url("https://x", ctx.signer, sid, list_id).rsplit("/", 1)[1]


def _new_subscriber(services: Any, email: str = "ada@example.org") -> tuple[int, int]:
    """A pending subscription with no request and no audit event: (subscriber id, list id)."""
    list_id = three_language_list(services.engine)
    subscribe(optin(services), list_slug="news", email=email, meta=FORM)
    found = subscriber(services.engine, email)
    assert found is not None
    with services.engine.begin() as conn:  # back to no subscription, no request, no event
        conn.execute(delete(SubscriptionRequest).where(
            SubscriptionRequest.subscriber_id == found["id"]))
        conn.execute(delete(Event))
    return found["id"], list_id


def test_each_move_writes_exactly_one_audit_event(services) -> None:
    sid, list_id = _new_subscriber(services)
    engine, now = services.engine, utcnow()
    with engine.begin() as conn:
        register(conn, sid, list_id, Requested("fr", "Ada", "form"), status="pending",
                 meta=FORM, now=now, data={"outcome": "pending"}, asked=True)
    assert [e["kind"] for e in events(engine)] == ["subscribe"]
    with engine.begin() as conn:
        wanted = confirm_subscription(conn, sid, list_id, meta=CLICK, now=now, data={})
    assert wanted == Requested("fr", "Ada", "form")
    assert [e["kind"] for e in events(engine)] == ["subscribe", "confirm"]
    with engine.begin() as conn:
        assert leave_list(conn, sid, list_id, CLICK, now, "page")
    assert [e["kind"] for e in events(engine)] == ["subscribe", "confirm", "unsubscribe"]
    assert subscription(engine, sid, list_id)["status"] == "unsubscribed"  # type: ignore[index]


def test_leaving_twice_records_one_unsubscribe_and_keeps_the_first_time(services) -> None:
    sid, list_id = _new_subscriber(services)
    engine, first = services.engine, utcnow()
    with engine.begin() as conn:
        confirm_subscription(conn, sid, list_id, meta=CLICK, now=first, data={})
        assert leave_list(conn, sid, list_id, CLICK, first, "page") is True
        assert leave_list(conn, sid, list_id, CLICK, first + timedelta(hours=1), "page") is False
    assert len(events(engine, "unsubscribe")) == 1
    left = subscription(engine, sid, list_id)["unsubscribed_at"]  # type: ignore[index]
    assert abs((left - first).total_seconds()) < 1


def test_removing_from_a_list_twice_on_the_cli_records_one_unsubscribe(services) -> None:
    three_language_list(services.engine)
    key = akey(services)
    add_subscriber(services.engine, email="cli@example.org", list_slug="news", address_key=key)
    for _ in range(2):
        assert remove_subscriber(services.engine, email="cli@example.org", list_slug="news",
                                 address_key=key) == "unsubscribed"
    assert len(events(services.engine, "unsubscribe")) == 1


def test_a_form_request_is_kept_until_confirmed_and_then_applied(services) -> None:
    list_id = three_language_list(services.engine)
    ctx = optin(services)
    sid = subscribe(ctx, list_slug="news", email="fr@example.org", name="Françoise",
                    language="fr", meta=FORM).subscriber_id
    assert sid is not None
    with services.engine.connect() as conn:
        assert requested(conn, sid, list_id) == Requested("fr", "Françoise", "form")
    # The audit trail is a record only: without it, the confirmation still knows the request.
    with services.engine.begin() as conn:
        conn.execute(delete(Event))
    with services.engine.begin() as conn:  # what the subscriber row says meanwhile
        conn.execute(update(Subscriber).where(Subscriber.id == sid).values(
            language="es", name="Someone Else"))
    assert confirm(ctx, _token(ctx, sid, list_id), meta=CLICK).outcome == "confirmed"
    person = subscriber(services.engine, "fr@example.org")
    assert person is not None and (person["language"], person["name"]) == ("fr", "Françoise")
    assert _requests(services.engine) == []


def test_a_later_form_request_replaces_the_earlier_one(services) -> None:
    list_id = three_language_list(services.engine)
    ctx = optin(services)
    sid = subscribe(ctx, list_slug="news", email="b@example.org", name="B", language="fr",
                    meta=FORM).subscriber_id
    subscribe(ctx, list_slug="news", email="b@example.org", name="Bea", language="es", meta=FORM)
    assert [(r["language"], r["name"]) for r in _requests(services.engine)] == [("es", "Bea")]
    confirm(ctx, _token(ctx, sid, list_id), meta=CLICK)  # type: ignore[arg-type]
    person = subscriber(services.engine, "b@example.org")
    assert person is not None and (person["language"], person["name"]) == ("es", "Bea")


def test_leaving_a_pending_subscription_forgets_its_request(services) -> None:
    list_id = three_language_list(services.engine)
    sid = subscribe(optin(services), list_slug="news", email="c@example.org", language="fr",
                    meta=FORM).subscriber_id
    with services.engine.begin() as conn:
        assert leave_list(conn, sid, list_id, CLICK, utcnow(), "page")  # type: ignore[arg-type]
    assert _requests(services.engine) == []


def test_cli_and_import_register_pending_requests_that_ask_for_nothing_more(
    services, tmp_path
) -> None:
    list_id = three_language_list(services.engine)
    key = akey(services)
    add_subscriber(services.engine, email="add@example.org", list_slug="news", address_key=key,
                   name="Ann", language="fr")
    import_csv(services.engine, path=write(tmp_path, "email,name\nimp@example.org,Ian\n"),
               list_slug="news", address_key=key)
    found = {(r["language"], r["name"], r["source"]) for r in _requests(services.engine)}
    assert found == {(None, "", "cli"), (None, "", "import:subs.csv")}
    # A confirmation keeps what the editor wrote on the subscriber row.
    ctx = optin(services)
    person = subscriber(services.engine, "add@example.org")
    assert person is not None
    confirm(ctx, _token(ctx, person["id"], list_id), meta=CLICK)
    assert subscriber(services.engine, "add@example.org")["language"] == "fr"  # type: ignore[index]
    assert len(_requests(services.engine)) == 1
    # Importing the same person with proof of consent confirms them and ends their request.
    import_csv(services.engine, path=write(tmp_path, "email\nimp@example.org\n"), list_slug="news",
               address_key=key, confirmed=True, consent_source="paper form")
    assert _requests(services.engine) == []


def test_purging_stale_pending_subscriptions_removes_their_requests(services) -> None:
    three_language_list(services.engine)
    three_language_list(services.engine, "other")
    key = akey(services)
    add_subscriber(services.engine, email="d@example.org", list_slug="news", address_key=key,
                   name="Dee Keep")
    add_subscriber(services.engine, email="d@example.org", list_slug="other", address_key=key,
                   confirmed=True, consent_source="paper form")
    report = purge_pending(services.engine, days=1, now=utcnow() + timedelta(days=2))
    assert (report.subscriptions, report.subscribers) == (1, 0)
    assert _requests(services.engine) == []
    with services.engine.connect() as conn:
        assert conn.scalar(select(SubscriptionRequest.id)) is None


def test_a_pending_request_is_in_the_persons_data_export(services) -> None:
    three_language_list(services.engine)
    subscribe(optin(services), list_slug="news", email="e@example.org", name="Eve",
              language="es", meta=FORM)
    [held] = export_data(services.engine, email="e@example.org")["subscriptions"]
    assert (held["status"], held["requested"]) == (
        "pending", {"language": "es", "name": "Eve", "source": "form"})


def test_an_import_confirms_new_people_with_the_time_and_audits_each_kind(
        services, tmp_path) -> None:
    list_id = three_language_list(services.engine)
    key = akey(services)
    import_csv(services.engine, path=write(tmp_path, "email\nyes@example.org\n"),
               list_slug="news", address_key=key, confirmed=True, consent_source="paper form")
    import_csv(services.engine, path=write(tmp_path, "email\nask@example.org\n"),
               list_slug="news", address_key=key)
    yes = subscription(services.engine, subscriber(services.engine, "yes@example.org")["id"],
                       list_id)  # type: ignore[index]
    ask = subscription(services.engine, subscriber(services.engine, "ask@example.org")["id"],
                       list_id)  # type: ignore[index]
    assert yes is not None and ask is not None
    assert yes["status"] == "confirmed" and yes["confirmed_at"] is not None
    assert (ask["status"], ask["confirmed_at"]) == ("pending", None)
    audit = [(e["kind"], e["list_id"], e["data"]) for e in events(services.engine)]
    assert audit == [("import-confirmed", list_id, {"status": "confirmed"}),
                     ("import", list_id, {"status": "pending"})]


def test_asking_on_one_list_leaves_the_request_on_another_unasked(services) -> None:
    from newsletter.audience.subscriptions import mark_asked

    news = three_language_list(services.engine)
    other = three_language_list(services.engine, "other")
    key = akey(services)
    for slug in ("news", "other"):
        add_subscriber(services.engine, email="two@example.org", list_slug=slug,
                       address_key=key)
    sid = subscriber(services.engine, "two@example.org")["id"]  # type: ignore[index]
    now = utcnow()
    with services.engine.begin() as conn:
        conn.execute(update(SubscriptionRequest).values(asked_at=None))
        mark_asked(conn, sid, news, now)
    asked = {r["list_id"]: r["asked_at"] is not None for r in _requests(services.engine)}
    assert asked == {news: True, other: False}


def test_a_request_without_its_row_is_recorded_as_asked_with_nothing_to_apply(services) -> None:
    from newsletter.audience.subscriptions import mark_asked

    sid, list_id = _new_subscriber(services)
    with services.engine.begin() as conn:
        mark_asked(conn, sid, list_id, utcnow())
    [row] = _requests(services.engine)
    assert (row["language"], row["name"], row["source"]) == (None, "", "")
    assert row["asked_at"] is not None and row["created_at"] is not None


def test_registering_again_without_asking_keeps_when_it_was_asked(services) -> None:
    sid, list_id = _new_subscriber(services)
    first, later = utcnow() - timedelta(hours=2), utcnow()
    for when, asked in ((first, True), (later, False)):
        with services.engine.begin() as conn:
            register(conn, sid, list_id, Requested("fr", "Ada", "form"), status="pending",
                     meta=FORM, now=when, data={}, asked=asked)
    [row] = _requests(services.engine)
    stored = row["asked_at"].replace(tzinfo=None)
    assert abs((stored - first.replace(tzinfo=None)).total_seconds()) < 1


def test_a_confirmed_subscription_is_not_registered_again(services) -> None:
    sid, list_id = _new_subscriber(services)
    with services.engine.begin() as conn, pytest.raises(ValueError, match="not registered"):
        register(conn, sid, list_id, Requested(), status="confirmed", meta=FORM, now=utcnow(),
                 data={}, asked=False)


def test_each_pending_person_gets_their_own_request_applied(services) -> None:
    list_id = three_language_list(services.engine)
    ctx = optin(services)
    ids = {email: subscribe(ctx, list_slug="news", email=email, name=name, language=lang,
                            meta=FORM).subscriber_id
           for email, name, lang in (("one@example.org", "Uno", "es"),
                                     ("two@example.org", "Deux", "fr"))}
    with services.engine.connect() as conn:
        assert requested(conn, ids["two@example.org"], list_id) == Requested("fr", "Deux", "form")
    confirm(ctx, _token(ctx, ids["two@example.org"], list_id), meta=CLICK)
    person = subscriber(services.engine, "two@example.org")
    assert person is not None and (person["language"], person["name"]) == ("fr", "Deux")
