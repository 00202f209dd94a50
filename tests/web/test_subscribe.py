"""Subscribing: the form, the three ways to post, consent records, and what is never revealed."""

from __future__ import annotations

import email
import email.policy
import json

import pytest

from newsletter.db.models import Suppression, utcnow
from newsletter.keyring import address_hash, read_address_key
from newsletter.services import build_services
from tests.web.conftest import WebEnv


def test_form_lists_the_lists_languages_and_speaks_the_asked_language(web: WebEnv) -> None:
    web.add_list(languages=("en", "fr"))
    page = web.client.get("/subscribe/news?lang=fr")
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text
    assert "S’abonner à Network News" in page.text
    assert '<label for="email">' in page.text
    assert 'value="fr" lang="fr" selected' in page.text
    assert 'value="es"' not in page.text  # the list does not offer Spanish


def test_form_follows_accept_language_when_no_lang_is_asked(web: WebEnv) -> None:
    web.add_list()
    page = web.client.get("/subscribe/news", headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"})
    assert '<html lang="es">' in page.text
    assert "Suscribirse a Network News" in page.text


def test_subscribe_creates_pending_subscription_consent_record_and_one_mail(web: WebEnv) -> None:
    list_id = web.add_list()
    answer = web.client.post(
        "/subscribe/news",
        data={
            "email": "Ana@Example.org",
            "name": "Ana",
            "language": "fr",
            "source": "https://network.example.org/join",
        },
        headers={"User-Agent": "Firefox/140"},
    )
    assert answer.status_code == 200
    assert "Consultez votre boîte de réception" in answer.text
    subscriber = web.subscriber("ana@example.org")
    assert subscriber["language"] == "fr" and subscriber["name"] == "Ana"
    assert web.subscription(subscriber["id"], list_id)["status"] == "pending"
    [event] = web.events("subscribe")
    assert event["ip"] and event["user_agent"] == "Firefox/140"
    assert event["source"] == "https://network.example.org/join"
    assert event["consent_text"].startswith("J’accepte de recevoir Network News")
    assert event["data"]["lists"] == ["news"]
    [mail] = web.outbox("confirm")
    assert mail["recipient"] == "ana@example.org" and mail["status"] == "queued"
    message = email.message_from_bytes(mail["message"], policy=email.policy.default)
    assert message["Subject"] == "Merci de confirmer votre abonnement à Network News"
    assert mail["message"].isascii()  # the non-ASCII subject went out as RFC 2047 words


def test_json_post_answers_json_and_queues_the_mail(web: WebEnv) -> None:
    web.add_list()
    answer = web.client.post(
        "/subscribe/news",
        content=json.dumps({"email": "js@example.org", "language": "es"}),
        headers={"Content-Type": "application/json", "Origin": "https://network.example.org"},
    )
    assert answer.status_code == 200
    assert answer.json()["status"] == "check-inbox"
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "Revise su bandeja" in answer.json()["message"]
    assert len(web.outbox("confirm")) == 1


def test_json_errors_are_json_with_the_field(web: WebEnv) -> None:
    web.add_list()
    answer = web.client.post(
        "/subscribe/news",
        content=b'{"email": "nope"}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["field"] == "email"


def test_json_post_to_an_unknown_list_gets_a_readable_json_404(web: WebEnv) -> None:
    answer = web.client.post(
        "/subscribe/nope",
        content=b'{"email": "a@example.org"}',
        headers={"Content-Type": "application/json", "Origin": "https://network.example.org"},
    )
    assert answer.status_code == 404 and "error" in answer.json()
    assert answer.headers["access-control-allow-origin"] == "*"


def test_cors_preflight_allows_scripts_on_other_sites(web: WebEnv) -> None:
    web.add_list()
    answer = web.client.options(
        "/subscribe/news",
        headers={"Origin": "https://network.example.org", "Access-Control-Request-Method": "POST"},
    )
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-methods"] == "POST"


def test_plain_cross_site_form_post_records_the_referring_page(web: WebEnv) -> None:
    web.add_list()
    answer = web.client.post(
        "/subscribe/news",
        content=b"email=site%40example.org",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "https://network.example.org",
            "Referer": "https://network.example.org/newsletter",
        },
    )
    assert answer.status_code == 200
    assert web.events("subscribe")[0]["source"] == "https://network.example.org/newsletter"


def test_multipart_post_works_like_a_plain_form(web: WebEnv) -> None:
    web.add_list()
    answer = web.client.post(
        "/subscribe/news", files={"email": (None, "multi@example.org"), "name": (None, "Zoé")}
    )
    assert answer.status_code == 200
    assert web.subscriber("multi@example.org")["name"] == "Zoé"


def _suppress(web: WebEnv, address: str) -> None:
    with web.engine.begin() as conn:
        conn.execute(
            Suppression.__table__.insert().values(
                email_hash=address_hash(address, read_address_key(conn)),
                reason="complaint",
                detail="",
                created_at=utcnow(),
            )
        )


def test_answer_is_identical_for_new_pending_confirmed_and_suppressed_addresses(
    web: WebEnv,
) -> None:
    list_id = web.add_list()
    web.add_subscriber("confirmed@example.org", list_id, "confirmed")
    web.add_subscriber("pending@example.org", list_id, "pending")
    _suppress(web, "suppressed@example.org")
    answers = [
        web.client.post("/subscribe/news", data={"email": address, "language": "en"})
        for address in (
            "new@example.org",
            "pending@example.org",
            "confirmed@example.org",
            "suppressed@example.org",
        )
    ]
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert len({a.headers["content-type"] for a in answers}) == 1
    mailed = {row["recipient"] for row in web.outbox()}
    assert mailed == {"new@example.org", "pending@example.org"}
    assert web.subscriber("suppressed@example.org") is None


def test_honeypot_answers_like_success_but_does_nothing(web: WebEnv) -> None:
    web.add_list()
    normal = web.client.post("/subscribe/news", data={"email": "a@example.org", "language": "en"})
    bot = web.client.post(
        "/subscribe/news",
        data={"email": "bot@example.org", "website": "http://spam", "language": "en"},
    )
    assert bot.status_code == normal.status_code == 200
    assert bot.text == normal.text
    assert web.subscriber("bot@example.org") is None
    assert [r["recipient"] for r in web.outbox()] == ["a@example.org"]


def test_single_opt_in_list_confirms_at_once(web: WebEnv) -> None:
    list_id = web.add_list(slug="alerts", name="Alerts", opt_in="single")
    answer = web.client.post("/subscribe/alerts", data={"email": "s@example.org"})
    assert answer.status_code == 200 and "You are subscribed" in answer.text
    subscriber = web.subscriber("s@example.org")
    row = web.subscription(subscriber["id"], list_id)
    assert row["status"] == "confirmed" and row["confirmed_at"] is not None
    assert web.outbox() == []  # no welcome mail unless configured


def test_resubscribing_after_leaving_needs_a_new_confirmation(web: WebEnv) -> None:
    list_id = web.add_list()
    sid = web.add_subscriber("back@example.org", list_id, "unsubscribed")
    web.client.post("/subscribe/news", data={"email": "back@example.org"})
    assert web.subscription(sid, list_id)["status"] == "pending"
    assert len(web.outbox("confirm")) == 1


def test_confirmed_subscribers_details_are_not_overwritten_by_a_stranger(web: WebEnv) -> None:
    list_id = web.add_list()
    web.add_list(slug="events", name="Events")
    sid = web.add_subscriber("kept@example.org", list_id, "confirmed", language="en", name="Kim")
    web.client.post(
        "/subscribe/events", data={"email": "kept@example.org", "name": "Evil", "language": "es"}
    )
    subscriber = web.subscriber("kept@example.org")
    assert (subscriber["name"], subscriber["language"]) == ("Kim", "en")
    assert subscriber["id"] == sid


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"name=Ana", "application/x-www-form-urlencoded", 400),  # missing email
        (b"email=not-an-address", "application/x-www-form-urlencoded", 400),
        (b"email=a%40example.org&name=" + b"x" * 300, "application/x-www-form-urlencoded", 400),
        (b"email=a%40example.org&name=%FF%FE", "application/x-www-form-urlencoded", 400),
        (b"email=a@example.org&name=\xff", "application/x-www-form-urlencoded", 400),
        (b"email=a%40example.org&name=" + b"x" * 20000, "application/x-www-form-urlencoded", 413),
        (b"<xml/>", "text/xml", 415),
        (b'{"email": ', "application/json", 400),
        (b'{"email": "\xff@example.org"}', "application/json", 400),
        (b'["a@example.org"]', "application/json", 400),
    ],
    ids=[
        "missing-email",
        "bad-email",
        "long-name",
        "bad-utf8-escaped",
        "bad-utf8-raw",
        "too-large",
        "xml",
        "bad-json",
        "bad-json-utf8",
        "json-not-object",
    ],
)
def test_bad_input_gets_a_4xx_answer_and_stores_nothing(
    web: WebEnv, body: bytes, content_type: str, status: int
) -> None:
    web.add_list()
    answer = web.client.post(
        "/subscribe/news?lang=fr", content=body, headers={"Content-Type": content_type}
    )
    assert answer.status_code == status
    assert web.outbox() == [] and web.events() == []
    if content_type != "application/json":
        assert '<html lang="fr">' in answer.text


def test_bad_multipart_utf8_is_refused(web: WebEnv) -> None:
    web.add_list()
    boundary = "XyZ"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="email"\r\n\r\n'.encode()
        + b"\xff\xfe@example.org\r\n"
        + f"--{boundary}--\r\n".encode()
    )
    answer = web.client.post(
        "/subscribe/news",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status_code == 400
    assert web.events() == []


def test_invalid_address_redisplays_the_form_with_an_error_in_the_language(web: WebEnv) -> None:
    web.add_list()
    answer = web.client.post("/subscribe/news", data={"email": "nope", "language": "es"})
    assert answer.status_code == 400
    assert "Introduzca una dirección de correo electrónico válida." in answer.text
    assert 'role="alert"' in answer.text and 'value="nope"' in answer.text


def test_unknown_list_is_a_404_page_in_the_visitors_language(web: WebEnv) -> None:
    for method in ("get", "post"):
        answer = getattr(web.client, method)("/subscribe/nope", headers={"Accept-Language": "fr"})
        assert answer.status_code == 404
        assert "Page introuvable" in answer.text
    assert web.client.get("/subscribe/" + "x" * 500).status_code == 404
    assert web.client.get("/subscribe/%FF%FE").status_code == 404


def test_a_captcha_hook_can_refuse_a_post(web: WebEnv) -> None:
    from newsletter.web import create_app
    from tests.web.conftest import TestClient

    async def needs_token(request, fields) -> bool:
        return fields.get("captcha") == "solved"

    web.add_list()
    services = build_services(web.settings, engine=web.engine)
    client = TestClient(create_app(services, checks=[needs_token]))
    refused = client.post("/subscribe/news", data={"email": "a@example.org", "language": "es"})
    assert refused.status_code == 400 and "una persona" in refused.text
    accepted = client.post("/subscribe/news", data={"email": "a@example.org", "captcha": "solved"})
    assert accepted.status_code == 200
    assert len(web.outbox("confirm")) == 1


def test_cors_can_be_limited_to_the_organisations_sites(web: WebEnv) -> None:
    web.add_list()
    client = web.other_app({"web": {"cors_origins": ["https://network.example.org"]}})
    body, json_type = b'{"email": "a@example.org"}', "application/json"
    ours = client.post(
        "/subscribe/news",
        content=body,
        headers={"Content-Type": json_type, "Origin": "https://network.example.org"},
    )
    theirs = client.post(
        "/subscribe/news",
        content=body,
        headers={"Content-Type": json_type, "Origin": "https://evil.example"},
    )
    assert ours.headers["access-control-allow-origin"] == "https://network.example.org"
    assert "access-control-allow-origin" not in theirs.headers
    preflight = client.options("/subscribe/news", headers={"Origin": "https://evil.example"})
    assert preflight.status_code == 404


def test_non_ascii_local_part_gets_the_rule_not_a_500(web: WebEnv) -> None:
    web.add_list()
    form = web.client.post("/subscribe/news", data={"email": "jörg@exämple.org"})
    assert form.status_code == 400 and "must be plain ASCII" in form.text
    script = web.client.post("/subscribe/news", json={"email": "jörg@exämple.org"})
    assert script.status_code == 400 and script.json()["field"] == "email"
    assert "must be plain ASCII" in script.json()["error"]
    manage = web.client.post("/manage", data={"email": "jörg@exämple.org"})
    assert manage.status_code == 400 and "must be plain ASCII" in manage.text
    assert web.outbox() == [] and web.events() == [] and web.subscriber("jörg@exämple.org") is None
    idn = web.client.post("/subscribe/news", data={"email": "joerg@exämple.org"})
    assert idn.status_code == 200 and web.outbox()[0]["recipient"] == "joerg@exämple.org"
