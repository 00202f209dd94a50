"""A French reader sees the French names: list, description and newsletter, on pages and mails."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from newsletter.audience.lists import get_list
from newsletter.audience.listsync import sync_lists
from newsletter.tokens import Signer
from tests.conftest import SECRET
from tests.web.conftest import WebEnv

LISTS_TOML = """
[[list]]
slug = "news"
name = { en = "Network News", fr = "Les Nouvelles du réseau", es = "Noticias de la red" }
description = { en = "Monthly news.", fr = "Les nouvelles du mois.", es = "Las noticias del mes." }
languages = ["en", "fr", "es"]
"""
SITE = {"newsletter": {
    "name": {"en": "Test Network", "fr": "Réseau test : la lettre", "es": "Red de prueba"},
    "organisation": {"en": "Test Coalition", "fr": "Coalition test", "es": "Coalición de prueba"},
}}


def localized_lists(web: WebEnv, tmp_path: Path) -> int:
    path = tmp_path / "lists.toml"
    path.write_text(LISTS_TOML, encoding="utf-8")
    assert sync_lists(web.engine, path).created == ["news"]
    return get_list(web.engine, "news").id


def test_a_french_subscribers_preferences_page_is_french_throughout(web: WebEnv,
                                                                     tmp_path: Path) -> None:
    news = localized_lists(web, tmp_path)
    sid = web.add_subscriber("ana@example.org", news, "confirmed", language="fr")
    client = web.other_app(SITE)
    page = client.get(f"/preferences/{Signer(SECRET).sign('preferences', sid, news)}").text
    assert "Les Nouvelles du réseau" in page and "Les nouvelles du mois." in page
    assert "Réseau test\u202f: la lettre" in page and "Coalition test" in page
    for english in ("Network News", "Monthly news", "Test Network", "Test Coalition"):
        assert english not in page


def test_the_subscribe_form_and_confirmation_mail_name_the_list_in_the_readers_language(
        web: WebEnv, tmp_path: Path) -> None:
    localized_lists(web, tmp_path)
    client = web.other_app(SITE)
    form = client.get("/subscribe/news?lang=es").text
    assert "Noticias de la red" in form and "Las noticias del mes." in form
    assert "Network News" not in form and "Red de prueba" in form
    answer = client.post("/subscribe/news", data={"email": "ana@example.org", "language": "fr"})
    assert answer.status_code == 200
    [mail] = web.outbox("confirm")
    message = email.message_from_bytes(mail["message"], policy=email.policy.default)
    assert "Les Nouvelles du réseau" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert "Network News" not in text and "Test Network" not in text
    assert "Réseau test\u202f: la lettre" in text  # the newsletter's French name, typeset


def test_lists_sync_gives_an_existing_list_its_names_per_language(web: WebEnv,
                                                                   tmp_path: Path) -> None:
    web.add_list()  # made before lists.toml had translations
    path = tmp_path / "lists.toml"
    path.write_text(LISTS_TOML, encoding="utf-8")
    assert sync_lists(web.engine, path).created == []
    mlist = get_list(web.engine, "news")
    assert mlist.display_name("fr") == "Les Nouvelles du réseau"
    assert mlist.display_name("de") == "Network News"  # the default language's
