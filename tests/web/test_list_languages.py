"""The newsletter's language on the web: the form and the preferences page offer, and accept,
only what the subscriber's lists offer (audience/language.py), like the CLI and import do."""

from __future__ import annotations

import re

from newsletter.tokens import Signer
from tests.conftest import SECRET
from tests.web.conftest import WebEnv


def _options(page_text: str) -> list[str]:
    select = re.search(r'<select id="language" name="language">(.*?)</select>', page_text,
                       re.DOTALL)
    assert select, "no language choice on the page"
    return re.findall(r'<option value="([^"]+)"', select.group(1))


def _csrf(page_text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page_text)
    assert found, "no CSRF field on the page"
    return found.group(1)


def _member(web: WebEnv, languages: tuple[str, ...] = ("en", "fr")) -> tuple[int, int, str]:
    news = web.add_list(languages=languages)
    sid = web.add_subscriber("ana@example.org", news, "confirmed", language="fr", name="Ana")
    return sid, news, f"/preferences/{Signer(SECRET).sign('preferences', sid, news)}"


def test_preferences_page_offers_only_the_languages_of_the_subscribers_lists(web: WebEnv) -> None:
    _sid, _news, path = _member(web)
    page = web.client.get(path)
    assert _options(page.text) == ["en", "fr"]  # not every language the site speaks
    assert '<option value="fr" lang="fr" selected>' in page.text
    web.add_list(slug="redes", name="Redes", languages=("es", "en"), default_language="es")
    assert _options(web.client.get(path).text) == ["en", "fr", "es"]  # a public list offers es


def test_a_forged_preferences_post_with_another_language_changes_nothing(web: WebEnv) -> None:
    sid, news, path = _member(web)
    answer = web.client.post(path, data={"csrf": _csrf(web.client.get(path).text), "name": "Bob",
                                         "language": "es", "list": [str(news)]})
    assert answer.status_code == 400
    assert "Choisissez une langue dans la liste." in answer.text
    subscriber = web.subscriber("ana@example.org")
    assert (subscriber["language"], subscriber["name"]) == ("fr", "Ana")
    assert web.subscription(sid, news)["status"] == "confirmed"
    assert web.events() == []


def test_preferences_accept_a_language_as_the_cli_and_import_do(web: WebEnv) -> None:
    _sid, news, path = _member(web)
    answer = web.client.post(path, data={"csrf": _csrf(web.client.get(path).text), "name": "Ana",
                                         "language": "EN", "list": [str(news)]})
    assert answer.status_code == 200
    assert web.subscriber("ana@example.org")["language"] == "en"


def test_the_form_keeps_a_list_language_the_site_is_not_translated_into(web: WebEnv) -> None:
    list_id = web.add_list(languages=("en", "de"))
    page = web.client.get("/subscribe/news")
    assert _options(page.text) == ["en", "de"]
    web.client.post("/subscribe/news", data={"email": "jo@example.org", "language": "de"})
    subscriber = web.subscriber("jo@example.org")
    assert subscriber["language"] == "de"
    assert web.subscription(subscriber["id"], list_id)["status"] == "pending"
    web.client.post("/subscribe/news", data={"email": "li@example.org", "language": "Deutsch"})
    assert web.subscriber("li@example.org")["language"] == "de"


def test_the_form_gives_a_language_the_list_lacks_the_lists_default(web: WebEnv) -> None:
    web.add_list(languages=("fr", "en"), default_language="fr")
    answer = web.client.post("/subscribe/news", data={"email": "jo@example.org",
                                                      "language": "es"})
    assert answer.status_code == 200
    assert web.subscriber("jo@example.org")["language"] == "fr"


def test_a_page_nobody_asked_a_language_for_speaks_the_configured_default(web: WebEnv) -> None:
    french = web.other_app({"newsletter": {"default_language": "fr"}})
    page = french.get("/manage", headers={"Accept-Language": "de-DE, pt;q=0.8"})
    assert '<html lang="fr">' in page.text
    assert '<html lang="es">' in french.get("/manage", headers={"Accept-Language": "es"}).text
