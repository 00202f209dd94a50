"""Confirming, and asking for a new confirmation mail, called as the web app calls them: what
the link does to the subscription and the person's details, when it expires, and the request
that the web form queues as a job and runs after its answer.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import delete, update

import newsletter.tokens
from newsletter.audience.jobs import queue_subscribe, run_job, run_pending
from newsletter.audience.optin import (
    ConfirmResult,
    LinkExpired,
    RateLimited,
    RequestMeta,
    confirm,
    read_confirm_token,
    resend_confirmation,
    subscribe,
)
from newsletter.audience.subscriptions import set_status
from newsletter.db.models import MailingList, OutboxMessage, Subscriber, Subscription, utcnow
from newsletter.errors import NotFoundError
from newsletter.tokens import TokenError
from tests.audience.optin_support import (
    events,
    mails,
    optin,
    parse,
    rows,
    subscriber,
    subscription,
    suppress,
    text_of,
    three_language_list,
)
from tests.conftest import akey

META = RequestMeta(ip="192.0.2.8", user_agent="Mozilla/5.0", source="https://example.net/",
                   consent_text="Yes")
CLICK = RequestMeta(ip="198.51.100.3", user_agent="Phone")


def _token(ctx, address: str) -> str:
    """The confirmation token in the last mail queued for this address."""
    mail = [m for m in mails(ctx.engine, "confirm") if m["recipient"] == address][-1]
    return text_of(mail["message"]).split("/confirm/")[1].split()[0]


def _signed_at(ctx, monkeypatch: pytest.MonkeyPatch, when: float, *values: int) -> str:
    with monkeypatch.context() as m:
        m.setattr(newsletter.tokens, "time", SimpleNamespace(time=lambda: when))
        return ctx.signer.sign("confirm", *values, timestamped=True)


def _status(engine, sid: int, list_id: int, **values) -> None:
    with engine.begin() as conn:
        conn.execute(update(Subscription.__table__).where(
            Subscription.__table__.c.subscriber_id == sid,
            Subscription.__table__.c.list_id == list_id).values(**values))


def test_confirming_makes_the_subscription_confirmed_and_says_where_to_manage_it(
    services,
) -> None:
    list_id = three_language_list(services.engine)
    ctx = optin(services, welcome={"news": {"fr": "Un numéro par mois."}})
    sid = subscribe(ctx, list_slug="news", email="a@example.org", name="Ana", language="fr",
                    meta=META).subscriber_id
    assert sid is not None
    now = utcnow()
    result = confirm(ctx, _token(ctx, "a@example.org"), meta=CLICK, now=now)
    assert result == ConfirmResult("confirmed", sid, list_id, "Nouvelles", "fr",
                                   result.preferences_url)
    path = result.preferences_url.removeprefix("https://news.example.org/preferences/")
    assert ctx.signer.verify("preferences", path).values == (sid, list_id)
    row = subscription(services.engine, sid, list_id)
    assert row is not None and (row["status"], row["confirmed_at"]) == ("confirmed", now)
    event = events(services.engine, "confirm")[0]
    assert (event["data"], event["ip"], event["user_agent"]) == (
        {"opt_in": "double"}, CLICK.ip, CLICK.user_agent)
    assert (event["subscriber_id"], event["list_id"], event["created_at"]) == (sid, list_id, now)
    [welcome] = mails(services.engine, "welcome")
    message = parse(welcome["message"])
    assert message["Subject"] == "Bienvenue à Nouvelles" and "Ana" in message["To"]
    assert "Un numéro par mois." in text_of(welcome["message"])


def test_confirming_takes_the_latest_request_of_this_person_for_this_list(services) -> None:
    """A confirmed reader's details are not changed by a request; the link proves the mailbox,
    so confirming applies the name and language asked for this list."""
    other = three_language_list(services.engine, "other")
    list_id = three_language_list(services.engine)
    ctx = optin(services)
    sid = subscribe(ctx, list_slug="other", email="b@example.org", name="Bo", language="en",
                    meta=META).subscriber_id
    _status(services.engine, sid, other, status="confirmed")  # type: ignore[arg-type]
    subscribe(ctx, list_slug="news", email="b@example.org", name="Old", language="es", meta=META)
    subscribe(ctx, list_slug="news", email="b@example.org", name="Bob", language="fr", meta=META)
    subscribe(ctx, list_slug="other", email="b@example.org", name="Not this", language="es",
              meta=META)
    subscribe(ctx, list_slug="news", email="c@example.org", name="Someone else", language="es",
              meta=META)
    person = subscriber(services.engine, "b@example.org")
    assert (person["name"], person["language"]) == ("Bo", "en")  # type: ignore[index]
    token = ctx.signer.sign("confirm", sid, list_id, timestamped=True)  # type: ignore[arg-type]
    resend_confirmation(ctx, token, meta=CLICK)  # a later event of another kind is not a request
    result = confirm(ctx, token, meta=CLICK)
    assert (result.outcome, result.language, result.list_name) == ("confirmed", "fr", "Nouvelles")
    person = subscriber(services.engine, "b@example.org")
    assert (person["name"], person["language"]) == ("Bob", "fr")  # type: ignore[index]


def test_a_second_click_changes_nothing_and_says_so(services) -> None:
    list_id = three_language_list(services.engine)
    ctx = optin(services, welcome={"news": "yes"})
    subscribe(ctx, list_slug="news", email="d@example.org", language="es", meta=META)
    token, first = _token(ctx, "d@example.org"), utcnow() - timedelta(minutes=1)
    confirm(ctx, token, meta=CLICK, now=first)
    again = confirm(ctx, token, meta=CLICK)
    assert (again.outcome, again.language, again.list_name) == ("already", "es", "Noticias")
    row = subscription(services.engine, again.subscriber_id, list_id)
    assert row is not None and row["confirmed_at"] == first
    assert len(events(services.engine, "confirm")) == 1
    assert len(mails(services.engine, "welcome")) == 1


def test_a_link_used_after_leaving_does_not_undo_the_unsubscribe(services) -> None:
    list_id = three_language_list(services.engine)
    ctx = optin(services)
    sid = subscribe(ctx, list_slug="news", email="e@example.org", meta=META).subscriber_id
    token = _token(ctx, "e@example.org")
    with services.engine.begin() as conn:
        set_status(conn, sid, list_id, "unsubscribed", utcnow() + timedelta(seconds=2))  # type: ignore[arg-type]
    assert confirm(ctx, token, meta=CLICK).outcome == "stale"
    assert subscription(services.engine, sid, list_id)["status"] == "unsubscribed"  # type: ignore
    assert events(services.engine, "confirm") == []


def test_a_link_issued_after_leaving_confirms(services) -> None:
    list_id = three_language_list(services.engine)
    ctx = optin(services)
    sid = subscribe(ctx, list_slug="news", email="f@example.org", meta=META).subscriber_id
    _status(services.engine, sid, list_id, status="unsubscribed",  # type: ignore[arg-type]
            unsubscribed_at=utcnow() - timedelta(days=1))
    assert confirm(ctx, _token(ctx, "f@example.org"), meta=CLICK).outcome == "confirmed"
    _status(services.engine, sid, list_id, status="unsubscribed",  # type: ignore[arg-type]
            unsubscribed_at=None)
    assert confirm(ctx, _token(ctx, "f@example.org"), meta=CLICK).outcome == "confirmed"


def test_set_status_stamps_the_time_of_each_move(services) -> None:
    list_id = three_language_list(services.engine)
    sid = subscribe(optin(services), list_slug="news", email="g@example.org",
                    meta=META).subscriber_id
    start, later = utcnow(), utcnow() + timedelta(minutes=1)
    with services.engine.begin() as conn:
        set_status(conn, sid, list_id, "confirmed", start)  # type: ignore[arg-type]
        set_status(conn, sid, list_id, "unsubscribed", later)  # type: ignore[arg-type]
    row = subscription(services.engine, sid, list_id)  # type: ignore[arg-type]
    assert row is not None and row["status"] == "unsubscribed"
    assert (row["confirmed_at"], row["unsubscribed_at"], row["updated_at"]) == (start, later, later)
    assert len(rows(services.engine, Subscription)) == 1


def test_a_link_whose_subscription_is_gone_is_not_found(services) -> None:
    list_id = three_language_list(services.engine)
    ctx = optin(services)
    sid = subscribe(ctx, list_slug="news", email="h@example.org", meta=META).subscriber_id
    token = _token(ctx, "h@example.org")
    for table, column, value in [(Subscription, "list_id", list_id),
                                 (MailingList, "id", list_id), (Subscriber, "id", sid)]:
        with pytest.raises(NotFoundError, match="^this subscription no longer exists$"):
            confirm(ctx, ctx.signer.sign("confirm", sid + 1, list_id, timestamped=True),  # type: ignore[operator]
                    meta=CLICK)
        with pytest.raises(NotFoundError, match="^this subscription no longer exists$"):
            resend_confirmation(ctx, ctx.signer.sign("confirm", sid, list_id + 7), meta=CLICK)  # type: ignore[arg-type]
        with services.engine.begin() as conn:
            conn.execute(delete(table.__table__).where(table.__table__.c[column] == value))
        with pytest.raises(NotFoundError):
            confirm(ctx, token, meta=CLICK)
    assert events(services.engine, "confirm") == []


def test_a_link_expires_after_the_configured_days_and_still_says_whose_it_is(
    services, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = optin(services, confirm_days=7)
    week = 7 * 86400
    now = int(utcnow().timestamp())
    fresh = _signed_at(ctx, monkeypatch, now - week + 3, 4, 5)
    assert read_confirm_token(ctx, fresh) == (4, 5, now - week + 3)
    with pytest.raises(LinkExpired) as expired:
        read_confirm_token(ctx, _signed_at(ctx, monkeypatch, now - week - 3, 4, 5))
    assert (expired.value.subscriber_id, expired.value.list_id) == (4, 5)
    assert str(expired.value) == "expired token"


@pytest.mark.sqlite_only
def test_a_link_with_the_wrong_shape_or_purpose_is_refused(services) -> None:
    ctx = optin(services)
    for token in [ctx.signer.sign("confirm", 4, 5, 6, timestamped=True),
                  ctx.signer.sign("confirm", 4, timestamped=True),
                  ctx.signer.sign("confirm", 4, 5)]:  # no issue time: could never expire
        with pytest.raises(TokenError, match="^malformed token$"):
            read_confirm_token(ctx, token)
    for token in [ctx.signer.sign("confirm", 4, 5, 6), ctx.signer.sign("confirm", 4)]:
        with pytest.raises(TokenError, match="^malformed token$"):
            resend_confirmation(ctx, token, meta=CLICK)
    with pytest.raises(TokenError):
        read_confirm_token(ctx, ctx.signer.sign("unsubscribe", 4, 5))


def test_an_expired_link_gets_a_fresh_mail_in_the_subscribers_language(services) -> None:
    list_id = three_language_list(services.engine)
    ctx = optin(services)
    sid = subscribe(ctx, list_slug="news", email="k@example.org", name="Kim", language="es",
                    meta=META).subscriber_id
    old = ctx.signer.sign("confirm", sid, list_id)  # type: ignore[arg-type]
    assert resend_confirmation(ctx, old, meta=CLICK) == ("Noticias", "es")
    second = mails(services.engine, "confirm")[1]
    message = parse(second["message"])
    assert message["Content-Language"] == "es" and "Kim" in message["To"]
    assert message["Subject"] == "Confirme su suscripción a Noticias"
    event = events(services.engine, "resend")[0]
    assert (event["data"], event["ip"], event["subscriber_id"], event["list_id"]) == (
        {"outcome": "pending"}, CLICK.ip, sid, list_id)
    # The new mail's link works.
    assert confirm(ctx, _token(ctx, "k@example.org"), meta=CLICK).outcome == "confirmed"


def test_a_new_mail_is_sent_only_while_pending_unsuppressed_and_under_the_daily_share(
    services,
) -> None:
    list_id = three_language_list(services.engine)
    ctx = optin(services, max_per_address=2)
    sid = subscribe(ctx, list_slug="news", email="m@example.org", meta=META).subscriber_id
    token = ctx.signer.sign("confirm", sid, list_id)  # type: ignore[arg-type]
    resend_confirmation(ctx, token, meta=CLICK)
    resend_confirmation(ctx, token, meta=CLICK)  # the third mail today: refused
    with services.engine.begin() as conn:
        conn.execute(delete(OutboxMessage.__table__))
    _status(services.engine, sid, list_id, status="confirmed")  # type: ignore[arg-type]
    resend_confirmation(ctx, token, meta=CLICK)  # confirmed meanwhile
    _status(services.engine, sid, list_id, status="pending")  # type: ignore[arg-type]
    suppress(services.engine, akey(services), "m@example.org", utcnow())
    resend_confirmation(ctx, token, meta=CLICK)  # suppressed meanwhile
    outcomes = [e["data"]["outcome"] for e in events(services.engine, "resend")]
    assert outcomes == ["pending", "throttled", "nothing", "nothing"]
    assert mails(services.engine) == []


def test_asking_for_new_mails_counts_towards_the_ip_limit(services) -> None:
    list_id = three_language_list(services.engine)
    ctx = optin(services, max_per_ip=2)
    sid = subscribe(ctx, list_slug="news", email="n@example.org", meta=CLICK).subscriber_id
    token = ctx.signer.sign("confirm", sid, list_id)  # type: ignore[arg-type]
    resend_confirmation(ctx, token, meta=CLICK)
    with pytest.raises(RateLimited):
        resend_confirmation(ctx, token, meta=CLICK)
    assert len(mails(services.engine)) == 2


def test_a_queued_form_request_runs_once_with_its_own_time_and_origin(services) -> None:
    list_id = three_language_list(services.engine)
    ctx, asked = optin(services), utcnow() - timedelta(seconds=10)
    job = queue_subscribe(ctx, list_slug="news", email="P@Example.org", name="Pat",
                          language="es", meta=META, now=asked)
    assert mails(services.engine) == [] and events(services.engine) == []
    assert run_job(ctx, job) == "pending"
    assert run_job(ctx, job) is None  # done once only
    person = subscriber(services.engine, "p@example.org")
    assert person is not None and (person["name"], person["language"]) == ("Pat", "es")
    [event] = events(services.engine)
    assert (event["created_at"], event["ip"], event["source"], event["consent_text"]) == (
        asked, META.ip, META.source, META.consent_text)
    assert subscription(services.engine, person["id"], list_id)["created_at"] == asked  # type: ignore
    assert parse(mails(services.engine)[0]["message"])["Content-Language"] == "es"


def test_a_request_left_behind_is_run_by_the_next_pass_and_one_for_a_gone_list_dropped(
    services,
) -> None:
    three_language_list(services.engine)
    ctx, asked = optin(services), utcnow() - timedelta(minutes=5)
    queue_subscribe(ctx, list_slug="news", email="q@example.org", name="", language="xx",
                    meta=META, now=asked)
    queue_subscribe(ctx, list_slug="gone", email="r@example.org", name="", language="en",
                    meta=META, now=asked)
    assert run_pending(ctx) == 1
    assert subscriber(services.engine, "q@example.org")["language"] == "en"  # type: ignore[index]
    assert subscriber(services.engine, "r@example.org") is None
    assert rows(services.engine, OutboxMessage, status="job") == []


def test_a_subscriber_without_a_language_is_written_to_in_the_lists_default(services) -> None:
    list_id = three_language_list(services.engine)
    ctx = optin(services, welcome={"news": {"en": "Hello there", "fr": "Salut"}})
    now = utcnow()
    with services.engine.begin() as conn:  # e.g. added before languages were recorded
        sid = conn.execute(Subscriber.__table__.insert().values(
            email="z@example.org", name="Zed", language=None, attributes={}, created_at=now,
            updated_at=now)).inserted_primary_key[0]
        set_status(conn, sid, list_id, "pending", now)
    assert resend_confirmation(ctx, ctx.signer.sign("confirm", sid, list_id),
                               meta=CLICK) == ("News", "en")
    assert parse(mails(services.engine, "confirm")[0]["message"])["Content-Language"] == "en"
    result = confirm(ctx, _token(ctx, "z@example.org"), meta=CLICK)
    assert (result.outcome, result.language, result.list_name) == ("confirmed", None, "News")
    welcome = mails(services.engine, "welcome")[0]["message"]
    assert parse(welcome)["Content-Language"] == "en" and "Hello there" in text_of(welcome)
