"""Each reader's email speaks their language: name, masthead, organisation, date, typography."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.compose import compile_issue, load_issue
from newsletter.config import load_settings
from tests.compose.conftest import CONFIG, EXAMPLE
from tests.compose.test_compile import ALICE

NNBSP, NBSP = "\u202f", "\u00a0"
LOCALIZED = """
[newsletter]
base_url = "https://news.example.org"
secret_key = "compose-test-secret"

[newsletter.name]
en = "Coalition News"
fr = "Les Nouvelles de la coalition"
es = "Noticias de la coalición"

[newsletter.organisation]
en = "Migration Coalition"
fr = "Coalition migrations"
es = "Coalición migraciones"

[newsletter.masthead]
en = "Monthly: news from members"
fr = "Mensuel : les nouvelles des membres"
es = "Mensual: noticias de los miembros"

[[newsletter.social_links]]
url = "https://example.org/site"
name = { en = "Website", fr = "Site web", es = "Sitio web" }

[languages.en]
locale = "en_GB"

[database]
url = "sqlite:///{db}"
"""
WORDS = {
    "en": ("Coalition News", "Migration Coalition", "Monthly: news from members", "Website",
           "20 November 2026"),
    "fr": ("Les Nouvelles de la coalition", "Coalition migrations",
           f"Mensuel{NNBSP}: les nouvelles des membres", "Site web",
           f"20{NBSP}novembre{NBSP}2026"),
    "es": ("Noticias de la coalición", "Coalición migraciones",
           "Mensual: noticias de los miembros", "Sitio web", "20 de noviembre de 2026"),
}


def localized_settings(compose_ws: Path):
    db = compose_ws.parent / "absent.db"
    (compose_ws / "newsletter.toml").write_text(LOCALIZED.replace("{db}", str(db)),
                                                encoding="utf-8")
    return load_settings(compose_ws, environ={})


def visible(html: str) -> str:
    """The words of an HTML page, without tags (the reader's view)."""
    return re.sub(r"[ \t\r\n]+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_the_email_and_its_text_part_are_in_the_readers_language(compose_ws: Path,
                                                                  lang: str) -> None:
    settings = localized_settings(compose_ws)
    edition = compile_issue(load_issue(compose_ws, EXAMPLE), lang, settings)
    html, text = edition.fill(ALICE)
    for part in (visible(html), visible(edition.web_html), text):
        for word in WORDS[lang][:3] + WORDS[lang][4:]:
            assert word in part, f"{lang}: {word!r} missing"
        others = [w for other in WORDS if other != lang for w in WORDS[other][:2]]
        assert not [w for w in others if w in part and w not in WORDS[lang]]
    assert WORDS[lang][3] in visible(html)  # the social link's label


def test_french_typography_is_in_the_french_email_and_not_in_the_english_one(
        compose_ws: Path) -> None:
    settings = localized_settings(compose_ws)
    issue = load_issue(compose_ws, EXAMPLE)
    fr_html, fr_text = compile_issue(issue, "fr", settings).fill(ALICE)
    en_html, en_text = compile_issue(issue, "en", settings).fill(ALICE)
    # A colon or question mark never starts a line in French: a narrow no-break space glues it.
    assert re.search(rf"\w{NNBSP}[:?!;]", visible(fr_html))
    assert re.search(rf"\w{NNBSP}[:?!;]", fr_text)
    assert not re.search(r"\w [:?!;](\s|$)", visible(fr_html).replace("&nbsp;", ""))
    assert NNBSP not in en_html and NNBSP not in en_text
    assert "Monthly: news from members" in en_text  # English keeps its colon tight
    # Links keep their URLs untouched.
    assert "https://news.example.org/unsubscribe/TOKEN-U" in fr_html


def test_an_unchanged_plain_configuration_keeps_its_single_name(compose_ws: Path) -> None:
    db = compose_ws.parent / "absent.db"
    (compose_ws / "newsletter.toml").write_text(CONFIG.format(db=db), encoding="utf-8")
    settings = load_settings(compose_ws, environ={})
    _, text = compile_issue(load_issue(compose_ws, EXAMPLE), "fr", settings).fill(ALICE)
    assert text.count("Coalition News") >= 1
