"""The preferences page and the one-click POST are served on a short path past Starlette's
router: they must answer exactly like every other route, errors and headers included."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

import newsletter.web.context
import newsletter.web.preferences
from newsletter.links import preferences_url, unsubscribe_url
from newsletter.tokens import Signer
from tests.conftest import SECRET
from tests.web.conftest import BASE_URL, TestClient, WebEnv


def _member(web: WebEnv, language: str = "fr") -> tuple[int, int, str, str]:
    """(subscriber id, list id, preferences path, unsubscribe path) of a confirmed subscriber."""
    list_id = web.add_list(name="Weekly <Digest> & Co")
    sid = web.add_subscriber(f"zoe.{language}@example.org", list_id, language=language)
    signer = Signer(SECRET)
    return (
        sid,
        list_id,
        preferences_url(BASE_URL, signer, sid, list_id).removeprefix(BASE_URL),
        unsubscribe_url(BASE_URL, signer, sid, list_id).removeprefix(BASE_URL),
    )


@pytest.fixture
def paths(web: WebEnv) -> tuple[str, str]:
    """(preferences path, unsubscribe path) of a confirmed French subscriber."""
    return _member(web)[2:]


def _secure(headers) -> bool:  # type: ignore[no-untyped-def]
    return (
        "frame-ancestors 'none'" in headers["content-security-policy"]
        and headers["referrer-policy"] == "no-referrer"
        and headers["x-content-type-options"] == "nosniff"
        and headers["cache-control"] == "no-store"
    )


def test_answers_and_errors_carry_the_security_headers(web: WebEnv, paths) -> None:
    prefs, leave = paths
    page = web.client.get(prefs)
    assert page.status_code == 200 and "Abonnement de zoe.fr@example.org" in page.text
    forged = web.client.get(prefs[:-3] + "AAA", headers={"Accept-Language": "es"})
    assert forged.status_code == 400 and '<html lang="es">' in forged.text
    gone = web.client.get("/preferences/" + Signer(SECRET).sign("preferences", 99999, 1))
    assert gone.status_code == 404
    one_click = web.client.post(leave, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200 and "désabonné" in one_click.text
    for answer in (page, forged, gone, one_click):
        assert _secure(answer.headers)


def test_other_methods_and_paths_next_to_them_behave_as_before(web: WebEnv) -> None:
    sid, list_id, prefs, leave = _member(web)
    head = web.client.head(prefs)
    assert head.status_code == 200 and head.content == b"" and _secure(head.headers)
    slash = web.client.get(prefs + "/", follow_redirects=True)  # a link copied with a slash
    assert slash.status_code == 200 and "Abonnement de" in slash.text
    assert web.client.get("/preferences/").status_code == 404
    assert web.client.put(prefs).status_code == 405
    button = web.client.get(leave)  # the page with a button, not the one-click
    assert button.status_code == 200 and 'method="post"' in button.text
    assert web.subscription(sid, list_id)["status"] == "confirmed"


def test_an_unexpected_error_is_a_500_page_in_the_visitors_language_and_logged(
    web: WebEnv, paths, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(newsletter.web.context.WebContext, "preferences_view", broken)
    client = TestClient(web.client.app, raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR):
        answer = client.get(paths[0], headers={"Accept-Language": "fr"})
    assert answer.status_code == 500 and _secure(answer.headers)
    assert "Un problème est survenu" in answer.text and "boom" not in answer.text
    assert any("boom" in str(r.exc_info) for r in caplog.records if r.exc_info)
    with pytest.raises(RuntimeError, match="boom"):  # and the server sees it, to log it
        TestClient(web.client.app).get(paths[0])


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "Do you want to stop receiving Weekly &lt;Digest&gt; &amp; Co?"),
        ("fr", "Voulez-vous ne plus recevoir Weekly &lt;Digest&gt; &amp; Co"),
        ("es", "¿Desea dejar de recibir Weekly &lt;Digest&gt; &amp; Co?"),
    ],
)
def test_a_list_name_inside_a_translated_sentence_is_escaped(
    web: WebEnv, language: str, text: str
) -> None:
    page = web.client.get(_member(web, language)[3])
    assert f'<html lang="{language}">' in page.text
    assert text in page.text and "<Digest>" not in page.text


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_pages_still_load_after_postgresql_drops_the_apps_connections(
    web: WebEnv, paths
) -> None:
    prefs, leave = paths
    assert web.client.get(prefs).status_code == 200  # the app's read connections are open
    assert web.client.get(leave).status_code == 200
    with web.engine.connect() as conn:  # a server restart or an idle timeout, as seen by the app
        dropped = conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()
    assert dropped >= 1
    for _ in range(8):  # every connection in turn
        assert web.client.get(prefs).status_code == 200
        assert web.client.get(leave).status_code == 200
