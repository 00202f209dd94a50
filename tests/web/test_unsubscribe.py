"""One-click unsubscribe (RFC 8058) and the page behind the link in every message."""

from __future__ import annotations

import pytest

from newsletter.db.models import Subscription
from newsletter.links import unsubscribe_url
from newsletter.tokens import Signer
from tests.conftest import SECRET
from tests.web.conftest import BASE_URL, WebEnv


@pytest.fixture
def link(web: WebEnv) -> tuple[int, int, str]:
    """(subscriber id, list id, path) for a confirmed Spanish subscriber, as the sender links it."""
    list_id = web.add_list()
    sid = web.add_subscriber("leo@example.org", list_id, "confirmed", language="es")
    url = unsubscribe_url(BASE_URL, Signer(SECRET), sid, list_id)
    return sid, list_id, url.removeprefix(BASE_URL)


def test_get_never_unsubscribes_and_offers_button_and_preferences(web: WebEnv, link) -> None:
    sid, list_id, path = link
    for _ in range(3):  # link scanners prefetch, sometimes repeatedly
        page = web.client.get(path)
    assert page.status_code == 200
    assert '<html lang="es">' in page.text and "Darse de baja" in page.text
    assert 'method="post"' in page.text and "/preferences/" in page.text
    assert web.subscription(sid, list_id)["status"] == "confirmed"
    assert web.events() == []


def test_gmail_style_one_click_post_unsubscribes_at_once_with_200(web: WebEnv, link) -> None:
    sid, list_id, path = link
    answer = web.client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert "location" not in answer.headers and "set-cookie" not in answer.headers
    row = web.subscription(sid, list_id)
    assert row["status"] == "unsubscribed" and row["unsubscribed_at"] is not None
    [event] = web.events("unsubscribe")
    assert event["data"] == {"via": "one-click"} and event["ip"]


def test_multipart_one_click_post_works_too(web: WebEnv, link) -> None:
    sid, list_id, path = link
    answer = web.client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.status_code == 200
    assert web.subscription(sid, list_id)["status"] == "unsubscribed"


def test_repeating_one_click_succeeds_without_a_second_effect(web: WebEnv, link) -> None:
    sid, list_id, path = link
    answers = [web.client.post(path, data={"List-Unsubscribe": "One-Click"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len(web.events("unsubscribe")) == 1


def test_odd_bodies_do_not_block_leaving(web: WebEnv, link) -> None:
    sid, list_id, path = link
    answer = web.client.post(path, content=b"\xff" * 10, headers={"Content-Type": "text/plain"})
    assert answer.status_code == 200
    assert web.subscription(sid, list_id)["status"] == "unsubscribed"


def test_button_on_the_page_unsubscribes_and_links_back_to_preferences(web: WebEnv, link) -> None:
    sid, list_id, path = link
    answer = web.client.post(path, data={"List-Unsubscribe": "One-Click", "via": "page"})
    assert answer.status_code == 200
    assert "Ya no recibirá Network News." in answer.text and "/preferences/" in answer.text
    assert web.events("unsubscribe")[0]["data"] == {"via": "page"}


@pytest.mark.parametrize("token", ["forged.token", "MTox.AAAAAAAAAAAAAAAAAAAAAA", "a" * 700])
def test_forged_tokens_unsubscribe_nobody(web: WebEnv, link, token: str) -> None:
    sid, list_id, _path = link
    assert web.client.get(f"/unsubscribe/{token}").status_code == 400
    assert (
        web.client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}).status_code
        == 400
    )
    assert web.subscription(sid, list_id)["status"] == "confirmed"


def test_a_preferences_token_cannot_unsubscribe(web: WebEnv, link) -> None:
    sid, list_id, _path = link
    token = Signer(SECRET).sign("preferences", sid, list_id)
    assert web.client.post(f"/unsubscribe/{token}").status_code == 400
    assert web.subscription(sid, list_id)["status"] == "confirmed"


def test_one_click_signed_with_a_retired_key_still_works(web: WebEnv, link) -> None:
    sid, list_id, _path = link
    rotated = web.other_app(
        {"newsletter": {"secret_key": "brand-new-key", "old_secret_keys": [SECRET]}}
    )
    old_link = unsubscribe_url(BASE_URL, Signer(SECRET), sid, list_id).removeprefix(BASE_URL)
    assert rotated.post(old_link, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert web.subscription(sid, list_id)["status"] == "unsubscribed"


def test_one_click_for_an_erased_subscriber_still_answers_200(web: WebEnv) -> None:
    list_id = web.add_list()
    token = Signer(SECRET).sign("unsubscribe", 4242, list_id)
    assert (
        web.client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}).status_code
        == 200
    )
    assert web.rows(Subscription) == [] and web.events() == []  # nothing written for nobody
