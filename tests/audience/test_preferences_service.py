"""What a subscriber's personal link changes, called as the web app calls it: the lists, name and
language saved, the subscriptions ended, the link mailed, and the audit trail of each.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.audience.hotreads import AsyncHotReads
from newsletter.audience.language import list_languages
from newsletter.audience.listedits import add_list
from newsletter.audience.optin import OptIn, RateLimited, RequestMeta
from newsletter.audience.preferences import (
    ListChoice,
    Membership,
    send_preferences_link,
    unsubscribe,
    unsubscribe_all,
    update_preferences,
)
from newsletter.audience.subscriptions import Leave, leave_many
from newsletter.bounces.policy import suppress
from newsletter.db.models import (
    Event,
    OutboxMessage,
    Subscriber,
    Subscription,
    SubscriptionRequest,
    utcnow,
)
from newsletter.errors import ValidationError
from newsletter.links import preferences_url
from newsletter.web.mails import SystemMails
from tests.audience.test_preferences_reads import add_person
from tests.conftest import akey

META = RequestMeta(ip="192.0.2.7", user_agent="Mozilla/5.0 test", source="https://x.example/p",
                   consent_text="I agree")
NOW = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)


def rows(services, model: Any, **where: Any) -> list[dict[str, Any]]:
    table = model.__table__
    query = select(table).order_by(table.c.id)
    for key, value in where.items():
        query = query.where(table.c[key] == value)
    with services.engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def events(services, kind: str) -> list[tuple[Any, ...]]:
    """(subscriber, list, when, ip, user agent, source, consent, data) of each event of a kind."""
    return [(e["subscriber_id"], e["list_id"], e["created_at"], e["ip"], e["user_agent"],
             e["source"], e["consent_text"], e["data"]) for e in rows(services, Event, kind=kind)]


def audit(sid: int | None, list_id: int | None, data: dict[str, Any],
          when: datetime = NOW) -> tuple[Any, ...]:
    return (sid, list_id, when, META.ip, META.user_agent, META.source, META.consent_text, data)


def status(services, sid: int, list_id: int) -> tuple[str, Any, Any]:
    [row] = rows(services, Subscription, subscriber_id=sid, list_id=list_id)
    return row["status"], row["confirmed_at"], row["unsubscribed_at"]


@pytest.fixture
def ctx(services) -> OptIn:
    return OptIn.from_settings(services.settings, services.engine, SystemMails(services.settings))


@pytest.fixture
def ana(services) -> SimpleNamespace:
    """Ana (fr) confirmed on news, pending on board (private); events is public too."""
    engine = services.engine
    news = add_list(engine, slug="news", name="News", languages=["en", "fr"],
                    default_language="en").id
    board = add_list(engine, slug="board", name="Board", languages=["en"],
                     default_language="en", public=False).id
    events_list = add_list(engine, slug="events", name="Events", languages=["en"],
                           default_language="en").id
    sid = add_person(engine, "ana@example.org", "fr", "Ana", {news: "confirmed", board: "pending"})
    return SimpleNamespace(sid=sid, news=news, board=board, events=events_list)


def test_saving_the_form_joins_and_leaves_exactly_the_lists_chosen(services, ctx, ana) -> None:
    view = update_preferences(ctx, subscriber_id=ana.sid, list_id=ana.news, name="Ana",
                              language="fr", list_ids=[ana.board, ana.events], meta=META, now=NOW)
    assert [(c.slug, c.subscribed, c.status) for c in view.lists] == [
        ("board", True, "confirmed"), ("events", True, "confirmed"), ("news", False,
                                                                       "unsubscribed")]
    assert status(services, ana.sid, ana.board) == ("confirmed", NOW, None)
    assert status(services, ana.sid, ana.events) == ("confirmed", NOW, None)
    assert status(services, ana.sid, ana.news)[::2] == ("unsubscribed", NOW)
    joined = {"outcome": "confirmed", "via": "preferences"}
    assert events(services, "subscribe") == [
        audit(ana.sid, ana.board, {"lists": ["board"], **joined}),
        audit(ana.sid, ana.events, {"lists": ["events"], **joined})]
    assert events(services, "unsubscribe") == [audit(ana.sid, ana.news, {"via": "preferences"})]
    assert events(services, "preferences") == []  # name and language unchanged: no entry
    [person] = rows(services, Subscriber)
    assert person["updated_at"] != NOW


def test_saving_the_same_choices_changes_and_records_nothing(services, ctx, ana) -> None:
    view = update_preferences(ctx, subscriber_id=ana.sid, list_id=ana.news, name=" Ana\x00 ",
                              language="fr", list_ids={ana.news}, meta=META, now=NOW)
    assert view.subscribed and view.name == "Ana" and view.language == "fr"
    assert status(services, ana.sid, ana.board)[0] == "pending"  # not chosen, never confirmed
    assert rows(services, Event) == []


@pytest.mark.parametrize("name, language, change", [
    ("Ana María", "fr", {"name": ["Ana", "Ana María"]}),
    ("Ana", "en", {"language": ["fr", "en"]}),
    ("Ana María", "en", {"name": ["Ana", "Ana María"], "language": ["fr", "en"]}),
])
def test_a_new_name_or_language_is_saved_with_its_old_value_in_the_audit(
    services, ctx, ana, name: str, language: str, change: dict[str, Any]
) -> None:
    view = update_preferences(ctx, subscriber_id=ana.sid, list_id=ana.news, name=name,
                              language=language, list_ids=[ana.news], meta=META, now=NOW)
    assert (view.name, view.language) == (name, language)
    [person] = rows(services, Subscriber)
    assert (person["name"], person["language"], person["updated_at"]) == (name, language, NOW)
    assert events(services, "preferences") == [audit(ana.sid, ana.news, change)]
    assert events(services, "subscribe") == events(services, "unsubscribe") == []


def test_the_form_refuses_a_language_or_list_not_offered_and_changes_nothing(
    services, ctx, ana
) -> None:
    other = add_list(services.engine, slug="staff", name="Staff", languages=["en"],
                     default_language="en", public=False).id
    # Only the languages of the lists shown: news offers en and fr, so not es (nor de).
    with pytest.raises(ValidationError,
                       match=r"^language 'es' is not offered by these newsletters \(en, fr\)$"):
        update_preferences(ctx, subscriber_id=ana.sid, list_id=ana.news, name="Ana",
                           language="es", list_ids=[ana.news], meta=META)
    with pytest.raises(ValidationError, match=r"^language 'de' is not offered"):
        update_preferences(ctx, subscriber_id=ana.sid, list_id=ana.news, name="Ana",
                           language="de", list_ids=[ana.news], meta=META)
    for chosen in ([other], [ana.news, other + 1]):
        with pytest.raises(ValidationError, match=r"^lists: a chosen list is not offered here$"):
            update_preferences(ctx, subscriber_id=ana.sid, list_id=ana.news, name="Bob",
                               language="fr", list_ids=chosen, meta=META)
    assert rows(services, Event) == [] and rows(services, Subscriber)[0]["name"] == "Ana"
    # The link's own private list is offered (and still after a save that leaves it out);
    # choosing it through that link is allowed.
    view = update_preferences(ctx, subscriber_id=ana.sid, list_id=other, name="Ana",
                              language="fr", list_ids=[ana.news], meta=META)
    staff = list_languages(["en"], "en", "staff")
    assert ListChoice(other, "staff", "Staff", "", False, None, staff) in view.lists
    view = update_preferences(ctx, subscriber_id=ana.sid, list_id=other, name="Ana",
                              language="fr", list_ids=[ana.news, other], meta=META)
    assert ListChoice(other, "staff", "Staff", "", True, "confirmed", staff) in view.lists
    [(_sid, list_id, when, *_rest)] = events(services, "subscribe")
    assert list_id == other and abs(when - utcnow()) < timedelta(minutes=1)


def test_unsubscribe_ends_one_list_once_and_says_whether_it_did(services, ctx, ana) -> None:
    assert unsubscribe(ctx, subscriber_id=ana.sid, list_id=ana.news, meta=META, now=NOW) is True
    assert unsubscribe(ctx, subscriber_id=ana.sid, list_id=ana.news, meta=META) is False
    assert unsubscribe(ctx, subscriber_id=ana.sid, list_id=ana.events, meta=META) is False
    assert status(services, ana.sid, ana.news)[::2] == ("unsubscribed", NOW)
    assert status(services, ana.sid, ana.board)[0] == "pending"
    assert events(services, "unsubscribe") == [audit(ana.sid, ana.news, {"via": "page"})]
    assert unsubscribe(ctx, subscriber_id=ana.sid, list_id=ana.board, meta=META,
                       via="one-click") is True
    [_first, (_sid, board, when, *_rest, data)] = events(services, "unsubscribe")
    assert (board, data) == (ana.board, {"via": "one-click"})
    assert abs(when - utcnow()) < timedelta(minutes=1)


def test_unsubscribe_all_ends_every_current_subscription_of_that_subscriber_only(
    services, ctx, ana
) -> None:
    bob = add_person(services.engine, "bob@example.org", "en", "Bob", {ana.news: "confirmed"})
    unsubscribe(ctx, subscriber_id=ana.sid, list_id=ana.news, meta=META, now=NOW)
    update_preferences(ctx, subscriber_id=ana.sid, list_id=ana.news, name="Ana", language="fr",
                       list_ids=[ana.events], meta=META, now=NOW)
    later = NOW + timedelta(hours=1)
    assert unsubscribe_all(ctx, subscriber_id=ana.sid, meta=META, now=later) == 2
    assert unsubscribe_all(ctx, subscriber_id=ana.sid, meta=META) == 0
    assert status(services, ana.sid, ana.board)[::2] == ("unsubscribed", later)
    assert status(services, ana.sid, ana.events)[::2] == ("unsubscribed", later)
    assert status(services, ana.sid, ana.news)[::2] == ("unsubscribed", NOW)  # left before
    assert status(services, bob, ana.news)[0] == "confirmed"
    assert sorted(e[:3] + e[-1:] for e in events(services, "unsubscribe") if e[2] == later) == [
        (ana.sid, ana.board, later, {"via": "all"}), (ana.sid, ana.events, later, {"via": "all"})]


def test_leave_many_ends_each_subscription_once_and_records_one_event_each(
    services, ana
) -> None:
    bob = add_person(services.engine, "bob@example.org", "en", "", {ana.news: "confirmed",
                                                                    ana.events: "unsubscribed"})
    other = RequestMeta(ip="198.51.100.9", user_agent="", source="")
    batch = [Leave(ana.sid, ana.news, META, "one-click"), Leave(bob, ana.news, other),
             Leave(ana.sid, ana.news, META, "page"), Leave(bob, ana.events, other),
             Leave(ana.sid, ana.board, META)]
    with services.engine.begin() as conn:
        assert leave_many(conn, batch, now=NOW) == [True, True, False, False, True]
    assert events(services, "unsubscribe") == [
        audit(ana.sid, ana.news, {"via": "one-click"}),
        (bob, ana.news, NOW, "198.51.100.9", None, None, None, {"via": "page"}),
        audit(ana.sid, ana.board, {"via": "page"})]
    assert status(services, bob, ana.news)[::2] == ("unsubscribed", NOW)
    assert status(services, ana.sid, ana.board)[::2] == ("unsubscribed", NOW)
    with services.engine.begin() as conn:  # nothing left to leave: nothing written
        assert leave_many(conn, [Leave(bob, ana.news, other)]) == [False]
        assert leave_many(conn, [Leave(ana.sid, ana.events, META)]) == [False]
    assert len(rows(services, Event)) == 3


@pytest.mark.postgresql_only
def test_one_statement_leaves_on_postgresql_write_what_leave_many_writes(services, ana) -> None:
    """The web app's one-click path on PostgreSQL: concurrent leaves in one statement each
    batch, each answered with the membership as it was, with leave_many's changes and events."""
    bob = add_person(services.engine, "bob@example.org", "en", "", {ana.news: "confirmed",
                                                                    ana.events: "unsubscribed"})
    with services.engine.begin() as conn:  # Ana's pending request for board
        conn.execute(SubscriptionRequest.__table__.insert().values(
            subscriber_id=ana.sid, list_id=ana.board, language="fr", name="", source="",
            created_at=NOW))
    other = RequestMeta(ip="198.51.100.9", user_agent="", source="")
    batch = [Leave(ana.sid, ana.news, META, "one-click"), Leave(bob, ana.news, other),
             Leave(ana.sid, ana.news, META, "page"), Leave(bob, ana.events, other),
             Leave(ana.sid, ana.board, META), Leave(bob + 100, ana.news, other)]
    hot = AsyncHotReads(services.engine)

    async def at_once() -> list[Any]:
        try:
            return list(await asyncio.gather(*(hot.leave(item) for item in batch)))
        finally:
            await hot.close()

    found = asyncio.run(at_once())
    assert [m.status if m else m for m in found] == [
        "confirmed", "confirmed", "confirmed", "unsubscribed", "pending", None]
    assert found[0] == Membership("fr", "en", "News", "confirmed")
    left = sorted(events(services, "unsubscribe"), key=lambda e: (e[0], e[1]))
    assert [(e[0], e[1], e[3], e[-1]) for e in left] == sorted([
        (ana.sid, ana.news, META.ip, {"via": "one-click"}),  # the first of Ana's two
        (bob, ana.news, "198.51.100.9", {"via": "page"}),
        (ana.sid, ana.board, META.ip, {"via": "page"})], key=lambda e: (e[0], e[1]))
    first = next(e for e in left if e[:2] == (ana.sid, ana.news))
    assert first[2:7] == (status(services, ana.sid, ana.news)[2], *audit(0, 0, {})[3:7])
    assert status(services, bob, ana.news)[0] == "unsubscribed"
    assert status(services, ana.sid, ana.board)[0] == "unsubscribed"
    assert rows(services, SubscriptionRequest) == []  # the pending request ended with it
    assert asyncio.run(at_once())[0] == Membership("fr", "en", "News", "unsubscribed")
    assert len(rows(services, Event)) == 3  # the repeats wrote nothing


def _mail(services) -> tuple[str, Any]:
    [row] = rows(services, OutboxMessage, kind="preferences")
    message = email.message_from_bytes(row["message"], policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return row["recipient"], (row["sender"], message["To"], message["Content-Language"],
                              body.get_content())


def test_the_preferences_link_is_mailed_to_a_known_address_for_its_confirmed_list(
    services, ctx, ana
) -> None:
    # A pending subscription made first: the link still opens the confirmed list's page.
    engine = services.engine
    early = add_list(engine, slug="aaa", name="Aaa", languages=["en"], default_language="en").id
    leo = add_person(engine, "leo@example.org", None, "Leo", {early: "pending"})
    with engine.begin() as conn:
        conn.execute(Subscription.__table__.insert().values(
            subscriber_id=leo, list_id=ana.news, status="confirmed", created_at=NOW,
            updated_at=NOW))
    assert send_preferences_link(ctx, email=" LEO@Example.ORG", language="es",
                                 meta=META, now=NOW) == "sent"
    recipient, (sender, to, language, text) = _mail(services)
    assert (recipient, sender, language) == ("leo@example.org", "news@example.org", "es")
    assert to == "Leo <leo@example.org>"
    assert preferences_url(ctx.base_url, ctx.signer, leo, ana.news) in text
    assert events(services, "manage") == [audit(leo, None, {"outcome": "sent"})]


def test_the_link_goes_in_the_subscribers_own_language_to_a_pending_subscriber(
    services, ctx, ana
) -> None:
    with services.engine.begin() as conn:
        conn.execute(Subscription.__table__.update().values(status="pending"))
    assert send_preferences_link(ctx, email="ana@example.org", language="en", meta=META) == "sent"
    _recipient, (_sender, _to, language, text) = _mail(services)
    assert language == "fr"
    assert preferences_url(ctx.base_url, ctx.signer, ana.sid, ana.news) in text


def test_no_link_goes_to_an_unknown_suppressed_or_listless_address(services, ctx, ana) -> None:
    engine = services.engine
    add_person(engine, "solo@example.org", "en", "Solo")
    add_person(engine, "gone@example.org", "en", "Gone", {ana.news: "confirmed"})
    with engine.begin() as conn:
        suppress(conn, "gone@example.org", akey(services), "hard", "550", NOW)
    answers = {address: send_preferences_link(ctx, email=address, language="en", meta=META,
                                              now=NOW)
               for address in ("nobody@example.org", "gone@example.org", "solo@example.org")}
    assert answers == {"nobody@example.org": "unknown", "gone@example.org": "suppressed",
                       "solo@example.org": "no-subscription"}
    assert rows(services, OutboxMessage) == []
    ids = {r["email"]: r["id"] for r in rows(services, Subscriber)}
    assert events(services, "manage") == [
        audit(None, None, {"outcome": "unknown"}),
        audit(ids["gone@example.org"], None, {"outcome": "suppressed"}),
        audit(ids["solo@example.org"], None, {"outcome": "no-subscription"})]


def test_links_are_limited_per_address_per_day_and_per_network_address(
    services, ctx, ana
) -> None:
    ctx = replace(ctx, max_per_address=2, max_per_ip=3)
    ask = lambda now, ip="192.0.2.7": send_preferences_link(  # noqa: E731
        ctx, email="ana@example.org", language="en", meta=replace(META, ip=ip), now=now)
    assert [ask(NOW), ask(NOW), ask(NOW)] == ["sent", "sent", "throttled"]
    assert len(rows(services, OutboxMessage, kind="preferences")) == 2
    with pytest.raises(RateLimited, match="too many requests"):
        ask(NOW)  # the fourth request from one IP within the hour
    tomorrow = utcnow() + timedelta(days=1, minutes=1)
    assert ask(tomorrow, "203.0.113.5") == "sent"  # a day later, the address may ask again
    assert [e[-1]["outcome"] for e in events(services, "manage")] == [
        "sent", "sent", "throttled", "sent"]
