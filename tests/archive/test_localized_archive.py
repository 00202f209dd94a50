"""The archive speaks each reader's language: site and list names, organisation and dates."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from newsletter.archive.builder import build_archive
from newsletter.config import load_settings
from newsletter.db.models import MailingList
from tests.archive.conftest import NOW, Builder, Newsroom

NBSP = "\u00a0"
OVERRIDES = {
    "newsletter": {
        "name": {"en": "Network News", "fr": "Les Nouvelles du réseau", "es": "Noticias"},
        "organisation": {"en": "The Coalition", "fr": "La Coalition", "es": "La Coalición"},
    },
    "languages": {"en": {"locale": "en_GB"}, "es": {"date_format": "MMMM 'de' y"}},
}


def test_every_archive_page_shows_its_languages_names_and_dates(
        newsroom: Newsroom, build: Builder, workspace: Path) -> None:
    names = {"news": {"en": "Network News", "fr": "Lettre du réseau", "es": "Boletín de la red"},
             "events": {"en": "Events", "fr": "Agenda", "es": "Agenda de eventos"}}
    for slug, table in names.items():
        list_id = newsroom.add_list(slug=slug, name=table["en"])
        with newsroom.engine.begin() as conn:
            conn.execute(update(MailingList).where(MailingList.id == list_id).values(names=table))
    newsroom.issue("2026-02-summit", day="2026-02-01")
    newsroom.issue("2026-03-dates", day="2026-03-05", list_slug="events")
    settings = load_settings(workspace, overrides=OVERRIDES, environ={})
    build_archive(settings=settings, engine=newsroom.engine, out=build.out, now=NOW)
    expected = {
        "en": ("Network News", "The Coalition", "1 February 2026"),
        "fr": ("Les Nouvelles du réseau", "La Coalition", f"1er{NBSP}février{NBSP}2026"),
        "es": ("Noticias", "La Coalición", "febrero de 2026"),
    }
    for lang, words in expected.items():
        for page in (f"{lang}/index.html", f"{lang}/2026/2026-02-summit/index.html"):
            text = (build.out / page).read_text(encoding="utf-8")
            missing = [w for w in words if w not in text]
            assert not missing, f"{page}: {missing}"
        index = (build.out / f"{lang}/index.html").read_text(encoding="utf-8")
        assert names["news"][lang] in index and names["events"][lang] in index
    fr_index = (build.out / "fr/index.html").read_text(encoding="utf-8")
    assert "Boletín" not in fr_index and "The Coalition" not in fr_index
    assert "Network News" not in fr_index
    assert "Les Nouvelles du réseau" in (build.out / "fr/feed.xml").read_text(encoding="utf-8")
