"""The fast paths behind preferences pages and one-click POSTs show fresh data and safe text."""

from __future__ import annotations

from markupsafe import escape
from sqlalchemy import text

from newsletter.links import preferences_url, unsubscribe_url
from newsletter.tokens import Signer
from newsletter.web.context import Site
from newsletter.web.pages import render, translator
from tests.conftest import SECRET
from tests.web.conftest import BASE_URL, WebEnv


def test_preferences_page_shows_a_one_click_unsubscribe_at_once(web: WebEnv) -> None:
    list_id = web.add_list(name="Weekly <Digest>")
    sid = web.add_subscriber("ana@example.org", list_id, "confirmed", language="fr")
    signer = Signer(SECRET)
    prefs = preferences_url(BASE_URL, signer, sid, list_id).removeprefix(BASE_URL)
    leave = unsubscribe_url(BASE_URL, signer, sid, list_id).removeprefix(BASE_URL)
    before = web.client.get(prefs)
    assert before.status_code == 200 and " checked" in before.text
    assert "Weekly &lt;Digest&gt;" in before.text and '<html lang="fr">' in before.text
    assert web.client.post(leave, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    after = web.client.get(prefs)
    assert " checked" not in after.text
    assert web.client.post(leave, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert len(web.events("unsubscribe")) == 1


def test_a_removed_subscriber_gets_not_found_on_the_preferences_page(web: WebEnv) -> None:
    list_id = web.add_list()
    sid = web.add_subscriber("gone@example.org", list_id, "confirmed")
    path = preferences_url(BASE_URL, Signer(SECRET), sid, list_id).removeprefix(BASE_URL)
    assert web.client.get(path).status_code == 200
    with web.engine.begin() as conn:
        conn.execute(text("DELETE FROM subscriptions WHERE subscriber_id = :sid"), {"sid": sid})
        conn.execute(text("DELETE FROM subscribers WHERE id = :sid"), {"sid": sid})
    assert web.client.get(path).status_code == 404


def test_pretranslated_templates_match_translation_at_render_time(web: WebEnv) -> None:
    site = Site.from_settings(web.settings)
    for language in ("en", "fr", "es"):
        context = {"site": site, "languages": ("en",), "here": "/x"}
        page = render("error.html", language, title="Not allowed", message="Not allowed", **context)
        skip = str(escape(translator(language)("Skip to content")))
        assert f'<html lang="{language}">' in page and f'href="#main">{skip}</a>' in page
    french = render("one_click.html", "fr")
    assert "You are unsubscribed" not in french and '<html lang="fr">' in french
