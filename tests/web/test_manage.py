"""The generic /manage page: mails a personal link, and reveals nothing about who is known."""

from __future__ import annotations

import pytest

from tests.web.conftest import BASE_URL, WebEnv, link_in


def test_page_explains_personal_links_and_offers_the_form(web: WebEnv) -> None:
    page = web.client.get("/manage?lang=es")
    assert page.status_code == 200
    assert '<html lang="es">' in page.text and "enlace personal" in page.text
    assert '<label for="email">' in page.text
    assert web.client.get("/").headers["location"] == "/manage"


def test_known_and_unknown_addresses_get_the_same_answer(web: WebEnv) -> None:
    list_id = web.add_list()
    web.add_subscriber("known@example.org", list_id, "confirmed", language="fr")
    known = web.client.post("/manage", data={"email": "known@example.org", "language": "en"})
    unknown = web.client.post("/manage", data={"email": "nobody@example.org", "language": "en"})
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text
    assert [row["recipient"] for row in web.outbox("preferences")] == ["known@example.org"]


def test_the_mailed_link_opens_the_preferences_in_the_subscribers_language(web: WebEnv) -> None:
    list_id = web.add_list()
    web.add_subscriber("known@example.org", list_id, "confirmed", language="fr")
    web.client.post("/manage", data={"email": "known@example.org"})
    web.deliver()
    [message] = web.smtp.messages
    assert message["Content-Language"] == "fr"
    link = link_in(message, f"{BASE_URL}/preferences/")
    page = web.client.get(link.removeprefix(BASE_URL))
    assert page.status_code == 200 and "Vos préférences" in page.text


def test_invalid_address_gets_a_400_form(web: WebEnv) -> None:
    answer = web.client.post(
        "/manage", data={"email": "<b>x</b>"}, headers={"Accept-Language": "fr"}
    )
    assert answer.status_code == 400
    assert "Merci d’indiquer une adresse e-mail valide." in answer.text
    assert "<b>x</b>" not in answer.text and "&lt;b&gt;x&lt;/b&gt;" in answer.text


@pytest.fixture
def web_extra() -> str:
    return "max_subscribes_per_ip = 3\nmax_confirmations_per_address = 2"


def test_manage_requests_are_rate_limited_per_address_and_ip(web: WebEnv) -> None:
    list_id = web.add_list()
    web.add_subscriber("known@example.org", list_id, "confirmed")
    answers = [web.client.post("/manage", data={"email": "known@example.org"}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert len(web.outbox("preferences")) == 2  # the per-address cap
