"""Subscribing, called as the web app's job and the CLI call it: what is stored, what is mailed,
in which language, and what the consent trail says, for each kind of address.

The web tests see the answer page; these look at the rows and the queued mail themselves.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, update

from newsletter.audience.audit import record_event
from newsletter.audience.listedits import add_list
from newsletter.audience.notices import welcome_text
from newsletter.audience.optin import (
    FORM_KINDS,
    OptIn,
    RateLimited,
    RequestMeta,
    SubscribeResult,
    check_ip_limit,
    clean_name,
    find_list,
    subscribe,
)
from newsletter.config import load_settings
from newsletter.db.models import OutboxMessage, Subscription, utcnow
from newsletter.errors import NotFoundError, ValidationError
from newsletter.tokens import Signer
from newsletter.web.mails import SystemMails
from tests.audience.optin_support import (
    events,
    mails,
    optin,
    parse,
    subscriber,
    subscription,
    suppress,
    text_of,
    three_language_list,
)
from tests.conftest import SECRET, akey

META = RequestMeta(ip="192.0.2.7", user_agent="Mozilla/5.0", source="https://example.net/join",
                   consent_text="Yes, send me News")


def test_a_name_loses_control_characters_and_may_be_200_characters_long() -> None:
    assert clean_name("  Zoë\x00 Q\x1b[0m\u200b  ") == "Zoë Q[0m"
    assert clean_name(None) == ""
    assert clean_name("x" * 200) == "x" * 200
    with pytest.raises(ValidationError, match=r"^name: longer than 200 characters$"):
        clean_name("x" * 201)


def test_from_settings_takes_the_web_limits_and_the_welcome_texts(services) -> None:
    settings = load_settings(services.settings.workspace, overrides={"web": {
        "confirm_days": 3, "max_confirmations_per_address": 2, "max_subscribes_per_ip": 9,
        "welcome": {"news": {"fr": "Bonjour"}}}})
    ctx = OptIn.from_settings(settings, services.engine, SystemMails(settings))
    assert (ctx.base_url, ctx.confirm_days, ctx.max_per_address, ctx.max_per_ip) == (
        "https://news.example.org", 3, 2, 9)
    assert ctx.welcome == {"news": {"fr": "Bonjour"}}
    assert ctx.engine is services.engine and ctx.mailer.sender == "news@example.org"
    assert ctx.address_key == akey(services)
    # Its links are signed with the site's key.
    assert Signer(SECRET).verify("confirm", ctx.signer.sign("confirm", 4, 5)).values == (4, 5)


def test_a_list_is_found_by_its_slug_only(services) -> None:
    list_id = add_list(services.engine, slug="a", name="A", languages=["en"],
                       default_language="en").id
    with services.engine.connect() as conn:
        assert find_list(conn, "a")["id"] == list_id
        for slug in ("", "b", "a" * 65):
            with pytest.raises(NotFoundError, match=f"^no list {slug!r}$"):
                find_list(conn, slug)


def test_the_consent_trail_keeps_where_a_request_came_from_cut_to_size(services) -> None:
    now = utcnow()
    long = RequestMeta(ip="1" * 70, user_agent="u" * 600, source="s" * 600, consent_text="I agree")
    with services.engine.begin() as conn:
        record_event(conn, "subscribe", long, now, None, None, {"k": 1})
        record_event(conn, "resend", RequestMeta(ip="", user_agent="", source=""), now)
    first, second = events(services.engine)
    assert (first["ip"], first["user_agent"], first["source"]) == ("1" * 64, "u" * 512, "s" * 512)
    assert first["consent_text"] == "I agree" and first["data"] == {"k": 1}
    assert first["created_at"] == now
    assert (second["ip"], second["user_agent"], second["source"], second["consent_text"]) == (
        None, None, None, None)
    assert second["data"] == {} and second["subscriber_id"] is None


def test_the_ip_limit_counts_form_requests_of_that_address_in_the_last_hour(services) -> None:
    now = utcnow()
    ip = "2001:db8::" + "f" * 60  # longer than the column: counted by its first 64 characters
    with services.engine.begin() as conn:
        for kind, when, source in [
            ("subscribe", now, ip), ("resend", now - timedelta(minutes=59), ip),
            ("manage", now - timedelta(minutes=61), ip),  # too old
            ("confirm", now, ip),  # not a form request
            ("subscribe", now, "192.0.2.99"),  # another network address
        ]:
            record_event(conn, kind, RequestMeta(ip=source), when)
        check_ip_limit(conn, FORM_KINDS, ip, 3, now)  # two count: under the limit
        check_ip_limit(conn, FORM_KINDS, ip, 0, now)  # 0: no limit
        check_ip_limit(conn, FORM_KINDS, None, 1, now)  # no address known: no limit
        with pytest.raises(RateLimited, match="too many requests from this network address"):
            check_ip_limit(conn, FORM_KINDS, ip, 2, now)
        with pytest.raises(RateLimited):  # exactly one hour old still counts
            check_ip_limit(conn, FORM_KINDS, ip, 3, now - timedelta(minutes=1))
        with pytest.raises(RateLimited):
            check_ip_limit(conn, FORM_KINDS, ip, 1, now)


def test_a_new_address_gets_a_pending_subscription_one_mail_and_a_consent_record(
    services,
) -> None:
    list_id = three_language_list(services.engine)
    ctx, now = optin(services, confirm_days=5), utcnow()
    result = subscribe(ctx, list_slug="news", email=" Ana.Lopez@Example.ORG ", name=" Ana\x07 ",
                       language="fr", meta=META, now=now)
    person = subscriber(services.engine, "ana.lopez@example.org")
    assert person is not None
    assert result == SubscribeResult("pending", list_id, "News", "double", "fr", person["id"])
    assert (person["name"], person["language"], person["attributes"]) == ("Ana", "fr", {})
    assert person["created_at"] == person["updated_at"] == now
    row = subscription(services.engine, person["id"], list_id)
    assert row is not None and row["status"] == "pending" and row["confirmed_at"] is None
    assert row["created_at"] == row["updated_at"] == person["created_at"]
    [event] = events(services.engine)
    assert (event["kind"], event["subscriber_id"], event["list_id"]) == (
        "subscribe", person["id"], list_id)
    assert event["data"] == {"lists": ["news"], "language": "fr", "name": "Ana",
                             "outcome": "pending"}
    assert (event["ip"], event["source"], event["consent_text"]) == (
        META.ip, META.source, META.consent_text)
    [mail] = mails(services.engine)
    assert (mail["kind"], mail["recipient"], mail["sender"]) == (
        "confirm", "ana.lopez@example.org", "news@example.org")
    message = parse(mail["message"])
    assert message["Subject"] == "Merci de confirmer votre abonnement à Nouvelles"
    assert message["Content-Language"] == "fr" and "Ana" in message["To"]
    text = text_of(mail["message"])
    assert "5 jours" in text
    token = text.split("https://news.example.org/confirm/")[1].split()[0]
    data = ctx.signer.verify("confirm", token)
    assert data.values == (person["id"], list_id) and data.issued_at is not None


def test_a_language_the_list_does_not_offer_falls_back_to_its_default(services) -> None:
    three_language_list(services.engine)
    result = subscribe(optin(services), list_slug="news", email="de@example.org",
                       language="de", meta=META)
    assert result.language == "en"
    person = subscriber(services.engine, "de@example.org")
    assert person is not None and (person["language"], person["name"]) == ("en", "")
    assert parse(mails(services.engine)[0]["message"])["Content-Language"] == "en"


def test_asking_again_while_pending_updates_the_request_and_mails_again(services) -> None:
    list_id = three_language_list(services.engine)
    ctx, first = optin(services), utcnow() - timedelta(minutes=5)
    subscribe(ctx, list_slug="news", email="other@example.org", meta=META)
    with services.engine.begin() as conn:  # someone else's confirmation protects only them
        conn.execute(update(Subscription.__table__).values(status="confirmed"))
    subscribe(ctx, list_slug="news", email="b@example.org", name="Bea", language="fr", meta=META,
              now=first)
    later = first + timedelta(minutes=2)
    result = subscribe(ctx, list_slug="news", email="b@example.org", language="es", meta=META,
                       now=later)
    assert result.outcome == "pending"
    person = subscriber(services.engine, "b@example.org")
    assert person is not None
    # The language follows the latest request; an empty name keeps the one given before.
    assert (person["name"], person["language"], person["updated_at"]) == ("Bea", "es", later)
    row = subscription(services.engine, person["id"], list_id)
    assert row is not None and row["status"] == "pending"
    assert row["updated_at"] == first  # still pending since the first request
    second = parse(mails(services.engine)[2]["message"])
    assert second["Content-Language"] == "es" and "Bea" in second["To"]
    assert [e["data"]["outcome"] for e in events(services.engine)] == ["pending"] * 3


def test_an_address_gets_at_most_its_share_of_confirmation_mails_a_day(services) -> None:
    three_language_list(services.engine)
    ctx = optin(services, max_per_address=2)
    outcomes = [subscribe(ctx, list_slug="news", email="c@example.org", meta=META).outcome
                for _ in range(3)]
    assert outcomes == ["pending", "pending", "throttled"]
    assert len(mails(services.engine, "confirm")) == 2
    assert events(services.engine)[-1]["data"]["outcome"] == "throttled"
    with services.engine.begin() as conn:  # a day later the address may ask again
        conn.execute(update(OutboxMessage.__table__).values(
            created_at=utcnow() - timedelta(days=1, seconds=5)))
    assert subscribe(ctx, list_slug="news", email="c@example.org", meta=META).outcome == "pending"


def test_a_confirmed_subscriber_is_not_changed_by_a_request_for_the_same_list(services) -> None:
    list_id = three_language_list(services.engine)
    ctx = optin(services)
    sid = subscribe(ctx, list_slug="news", email="d@example.org", name="Dee", language="fr",
                    meta=META).subscriber_id
    with services.engine.begin() as conn:
        conn.execute(update(Subscription.__table__).values(
            status="confirmed"))
    result = subscribe(ctx, list_slug="news", email="d@example.org", name="Mallory",
                       language="es", meta=META)
    assert (result.outcome, result.subscriber_id) == ("already", sid)
    person = subscriber(services.engine, "d@example.org")
    assert (person["name"], person["language"]) == ("Dee", "fr")  # type: ignore[index]
    assert subscription(services.engine, sid, list_id)["status"] == "confirmed"  # type: ignore
    assert len(mails(services.engine)) == 1  # only the first confirmation
    assert events(services.engine)[-1]["data"]["outcome"] == "already"


def test_a_suppressed_address_is_neither_stored_nor_mailed_and_the_trail_has_no_name(
    services,
) -> None:
    list_id = three_language_list(services.engine)
    suppress(services.engine, akey(services), "gone@example.org", utcnow())
    result = subscribe(optin(services), list_slug="news", email="Gone@example.org", name="Gus",
                       language="fr", meta=META)
    assert (result.outcome, result.subscriber_id) == ("suppressed", None)
    assert subscriber(services.engine, "gone@example.org") is None
    assert mails(services.engine) == []
    [event] = events(services.engine)
    assert (event["kind"], event["subscriber_id"], event["list_id"]) == ("subscribe", None, list_id)
    assert event["data"] == {"lists": ["news"], "language": "fr", "outcome": "suppressed"}
    assert event["source"] is None and event["ip"] == META.ip


def test_a_known_address_suppressed_since_keeps_its_id_in_the_trail_and_gets_no_mail(
    services,
) -> None:
    three_language_list(services.engine)
    ctx = optin(services)
    sid = subscribe(ctx, list_slug="news", email="e@example.org", meta=META).subscriber_id
    suppress(services.engine, akey(services), "e@example.org", utcnow())
    result = subscribe(ctx, list_slug="news", email="e@example.org", meta=META)
    assert (result.outcome, result.subscriber_id) == ("suppressed", sid)
    assert len(mails(services.engine)) == 1
    assert events(services.engine)[-1]["subscriber_id"] == sid


def test_a_single_opt_in_list_confirms_at_once_and_welcomes_in_the_subscribers_language(
    services,
) -> None:
    list_id = three_language_list(services.engine, "alerts", double=False)
    ctx, now = optin(services, welcome={"alerts": {"fr": "Bienvenue !", "en": "Hi"}}), utcnow()
    result = subscribe(ctx, list_slug="alerts", email="f@example.org", name="Flo",
                       language="fr", meta=META, now=now)
    assert (result.outcome, result.opt_in) == ("confirmed", "single")
    row = subscription(services.engine, result.subscriber_id, list_id)  # type: ignore[arg-type]
    assert row is not None and (row["status"], row["confirmed_at"]) == ("confirmed", now)
    confirm_event, subscribe_event = events(services.engine)
    assert (confirm_event["kind"], confirm_event["data"]) == ("confirm", {"opt_in": "single"})
    assert confirm_event["ip"] == META.ip and confirm_event["subscriber_id"] == result.subscriber_id
    assert subscribe_event["data"]["outcome"] == "confirmed"
    [mail] = mails(services.engine)
    message = parse(mail["message"])
    assert (mail["kind"], mail["recipient"], mail["sender"]) == (
        "welcome", "f@example.org", "news@example.org")
    assert message["Subject"] == "Bienvenue à Nouvelles" and "Flo" in message["To"]
    text = text_of(mail["message"])
    assert "Bienvenue !" in text
    ids = (result.subscriber_id, list_id)
    unsubscribe = message["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1]
    assert ctx.signer.verify("unsubscribe", unsubscribe).values == ids
    preferences = text.split("https://news.example.org/preferences/")[1].split()[0]
    assert ctx.signer.verify("preferences", preferences).values == ids


def test_a_single_opt_in_list_without_a_welcome_text_sends_nothing(services) -> None:
    three_language_list(services.engine, "alerts", double=False)
    result = subscribe(optin(services), list_slug="alerts", email="g@example.org", meta=META)
    assert result.outcome == "confirmed" and mails(services.engine) == []


def test_the_welcome_text_is_the_readers_then_the_lists_default_then_none() -> None:
    ctx = OptIn(engine=None, signer=Signer(SECRET), mailer=None, base_url="",  # type: ignore
                welcome={"a": {"fr": "Salut", "en": "Hi"}, "b": {"es": "Hola"}, "c": True,
                         "d": {}, "e": {"fr": ""}})

    def text(slug: str, language: str, default: str = "en") -> str | None:
        return welcome_text(ctx, {"slug": slug, "default_language": default}, language)

    assert text("a", "fr") == "Salut"
    assert text("a", "es") == "Hi"
    assert text("b", "fr") == ""  # a welcome mail, with no extra text
    assert text("b", "fr", default="es") == "Hola"  # the list's default language, not English
    assert text("c", "fr") == ""
    assert text("d", "fr") is None  # an empty table: no welcome mail
    assert text("e", "fr") == ""
    assert text("zzz", "fr") is None


def test_an_unknown_list_is_not_found_and_nothing_is_stored(services) -> None:
    with pytest.raises(NotFoundError):
        subscribe(optin(services), list_slug="nope", email="h@example.org", meta=META)
    assert subscriber(services.engine, "h@example.org") is None and events(services.engine) == []


def test_the_ip_limit_stops_subscribe_before_anything_is_stored(services) -> None:
    three_language_list(services.engine)
    ctx = optin(services, max_per_ip=2)
    for address in ("i1@example.org", "i2@example.org"):
        subscribe(ctx, list_slug="news", email=address, meta=META)
    with pytest.raises(RateLimited):
        subscribe(ctx, list_slug="news", email="i3@example.org", meta=META)
    assert subscriber(services.engine, "i3@example.org") is None
    assert len(mails(services.engine)) == 2


def test_a_single_opt_in_welcome_speaks_the_language_a_confirmed_reader_chose_before(
    services,
) -> None:
    news = three_language_list(services.engine)
    three_language_list(services.engine, "alerts", double=False)
    ctx = optin(services, welcome={"alerts": {"es": "Hola", "fr": "Salut"}})
    sid = subscribe(ctx, list_slug="news", email="j@example.org", name="Jo", language="es",
                    meta=META).subscriber_id
    with services.engine.begin() as conn:
        conn.execute(update(Subscription.__table__).where(
            Subscription.__table__.c.list_id == news).values(status="confirmed"))
    result = subscribe(ctx, list_slug="alerts", email="j@example.org", name="X", language="fr",
                       meta=META)
    assert (result.outcome, result.subscriber_id) == ("confirmed", sid)
    welcome = mails(services.engine, "welcome")[0]["message"]
    assert parse(welcome)["Content-Language"] == "es" and "Hola" in text_of(welcome)
    assert "Jo" in parse(welcome)["To"]


def test_two_requests_creating_one_subscriber_at_once_both_succeed(services) -> None:
    """The other request inserts the same new address between this one's read and its insert:
    this one's insert fails on the unique address, and it runs again, finding the row."""
    list_id = three_language_list(services.engine)
    ctx = optin(services)
    others: list[SubscribeResult] = []
    raced = []

    def other_request_first(conn, cursor, statement: str, *args) -> None:  # noqa: ANN001
        if statement.startswith("INSERT INTO subscribers") and not raced:
            raced.append(True)
            others.append(subscribe(ctx, list_slug="news", email="k@example.org", name="Kay",
                                    language="es", meta=META))

    event.listen(services.engine, "before_cursor_execute", other_request_first)
    try:
        result = subscribe(ctx, list_slug="news", email="k@example.org", name="Kai",
                           language="fr", meta=META)
    finally:
        event.remove(services.engine, "before_cursor_execute", other_request_first)
    [other] = others
    assert (other.outcome, result.outcome) == ("pending", "pending")
    assert result.subscriber_id == other.subscriber_id
    person = subscriber(services.engine, "k@example.org")
    assert person is not None and (person["name"], person["language"]) == ("Kai", "fr")
    assert subscription(services.engine, person["id"], list_id)["status"] == "pending"  # type: ignore[index]
    assert [parse(m["message"])["Content-Language"] for m in mails(services.engine)] == ["es", "fr"]
