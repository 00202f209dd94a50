"""Confirming: a button, not a prefetchable link; single-use, expiring, and harmless twice."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

import newsletter.tokens
from newsletter.db.models import Subscription
from newsletter.tokens import Signer
from tests.conftest import SECRET
from tests.web.conftest import BASE_URL, WebEnv, link_in


def _subscribe(web: WebEnv, address: str = "ana@example.org", language: str = "fr") -> str:
    """Subscribe through the form, deliver the mail, return the confirm path from it."""
    web.client.post("/subscribe/news", data={"email": address, "language": language})
    web.deliver()
    return link_in(web.smtp.messages[-1], f"{BASE_URL}/confirm/").removeprefix(BASE_URL)


def _signed_at(monkeypatch: pytest.MonkeyPatch, when: float, *values: int) -> str:
    with monkeypatch.context() as m:
        m.setattr(newsletter.tokens, "time", SimpleNamespace(time=lambda: when))
        return Signer(SECRET).sign("confirm", *values, timestamped=True)


def test_get_shows_a_button_and_confirms_nothing(web: WebEnv) -> None:
    list_id = web.add_list()
    path = _subscribe(web)
    page = web.client.get(path)
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text
    assert "Oui, je confirme mon abonnement" in page.text and 'method="post"' in page.text
    sid = web.subscriber("ana@example.org")["id"]
    assert web.subscription(sid, list_id)["status"] == "pending"


def test_post_confirms_and_records_time_and_ip(web: WebEnv) -> None:
    list_id = web.add_list()
    path = _subscribe(web)
    answer = web.client.post(path, headers={"User-Agent": "Mail scanner free browser"})
    assert answer.status_code == 200
    assert "Abonnement confirmé" in answer.text
    sid = web.subscriber("ana@example.org")["id"]
    row = web.subscription(sid, list_id)
    assert row["status"] == "confirmed" and row["confirmed_at"] is not None
    [event] = web.events("confirm")
    assert event["ip"] and event["created_at"] and event["subscriber_id"] == sid


def test_confirming_twice_is_harmless(web: WebEnv) -> None:
    web.add_list()
    path = _subscribe(web)
    first = web.client.post(path)
    second = web.client.post(path)
    assert first.status_code == second.status_code == 200
    assert "était déjà confirmé" in second.text
    assert len(web.events("confirm")) == 1


def test_a_used_link_does_not_undo_a_later_unsubscribe(web: WebEnv) -> None:
    list_id = web.add_list()
    path = _subscribe(web)
    web.client.post(path)
    sid = web.subscriber("ana@example.org")["id"]
    web.client.post(f"/unsubscribe/{Signer(SECRET).sign('unsubscribe', sid, list_id)}")
    again = web.client.post(path)
    assert again.status_code == 200 and "déjà été utilisé" in again.text
    assert web.subscription(sid, list_id)["status"] == "unsubscribed"


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b", "MToxOnQx.AAAAAAAAAAAAAAAAAAAAAA", "x" * 600, "%FF%FE.abc"],
)
def test_forged_or_broken_links_get_a_clear_400_page(web: WebEnv, token: str) -> None:
    web.add_list()
    for method in ("get", "post"):
        answer = getattr(web.client, method)(f"/confirm/{token}", headers={"Accept-Language": "es"})
        assert answer.status_code == 400
        assert "Este enlace no es válido" in answer.text
        assert 'href="/manage"' in answer.text
    assert web.events() == []


def test_a_token_for_another_purpose_does_not_confirm(web: WebEnv) -> None:
    list_id = web.add_list()
    sid = web.add_subscriber("p@example.org", list_id, "pending")
    token = Signer(SECRET).sign("preferences", sid, list_id)
    assert web.client.post(f"/confirm/{token}").status_code == 400
    assert web.subscription(sid, list_id)["status"] == "pending"


def test_expired_link_offers_a_new_confirmation_mail(
    web: WebEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    list_id = web.add_list()
    sid = web.add_subscriber("late@example.org", list_id, "pending", language="es")
    old = _signed_at(monkeypatch, time.time() - 8 * 86400, sid, list_id)
    page = web.client.get(f"/confirm/{old}")
    assert page.status_code == 410
    assert "Este enlace ha caducado" in page.text and 'value="resend"' in page.text
    assert web.client.post(f"/confirm/{old}").status_code == 410
    assert web.subscription(sid, list_id)["status"] == "pending"
    resent = web.client.post(f"/confirm/{old}", data={"action": "resend"})
    assert resent.status_code == 200 and "Revise su bandeja" in resent.text
    web.deliver()
    fresh = link_in(web.smtp.messages[-1], f"{BASE_URL}/confirm/").removeprefix(BASE_URL)
    assert web.client.post(fresh).status_code == 200
    assert web.subscription(sid, list_id)["status"] == "confirmed"


def test_link_of_a_deleted_subscriber_is_a_404(web: WebEnv) -> None:
    list_id = web.add_list()
    token = Signer(SECRET).sign("confirm", 999, list_id, timestamped=True)
    assert web.client.get(f"/confirm/{token}").status_code == 404
    assert web.client.post(f"/confirm/{token}").status_code == 404
    resend = web.client.post(f"/confirm/{token}", data={"action": "resend"})
    assert resend.status_code == 404
    # Nobody is confirmed or brought back, and no mail is queued for a deleted person.
    assert web.rows(Subscription) == [] and web.events() == [] and web.outbox() == []


def test_old_secret_key_still_confirms_after_rotation(web: WebEnv) -> None:
    list_id = web.add_list()
    sid = web.add_subscriber("rot@example.org", list_id, "pending")
    token = Signer("the-previous-key").sign("confirm", sid, list_id, timestamped=True)
    assert web.client.post(f"/confirm/{token}").status_code == 400  # not in the grace list yet
    rotated = web.other_app(
        {"newsletter": {"secret_key": "the-new-key", "old_secret_keys": ["the-previous-key"]}}
    )
    assert rotated.post(f"/confirm/{token}").status_code == 200
    assert web.subscription(sid, list_id)["status"] == "confirmed"
