"""The example issue's email is accessible: structure checked by hand, then axe-core in Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import html as lxml_html

from newsletter.compose.compiler import compile_issue
from newsletter.compose.slots import Slots
from newsletter.compose.source import load_issue
from newsletter.config import Settings
from newsletter.typography import typeset_text
from tests.axe import assert_accessible, axe_source
from tests.compose.conftest import EXAMPLE
from tests.conftest import chromium_browser

LANGUAGES = ["en", "fr", "es"]
# An email is not a page: the mail client shows it inside its own page and main landmark, so
# the two rules that want the document to have one are left out. The email's content sits in
# MJML's <div role="article" aria-roledescription="email" lang>, as email clients expect.
PAGE_LEVEL_RULES = ("landmark-one-main", "region")


def email_html(workspace: Path, settings: Settings, lang: str) -> tuple[Any, str]:
    """(compiled edition, the HTML one recipient receives)."""
    edition = compile_issue(load_issue(workspace, EXAMPLE), lang, settings)
    base = "https://news.example.org"
    slots = Slots(name="Ana", unsubscribe_url=f"{base}/unsubscribe/tok",
                  preferences_url=f"{base}/preferences/tok", web_url=edition.web_url)
    return edition, edition.fill_html(slots)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_email_has_a_title_heading_a_language_and_layout_tables_screen_readers_skip(
        compose_ws: Path, settings: Settings, lang: str) -> None:
    edition, page = email_html(compose_ws, settings, lang)
    doc = lxml_html.document_fromstring(page)
    assert doc.get("lang") == lang
    # The title as readers see it: French typography puts no-break spaces in it.
    title = typeset_text(edition.title, lang)
    assert [h.text_content().strip() for h in doc.iter("h1")] == [title]
    tables = list(doc.iter("table"))
    data = [t for t in tables if t.xpath("./tr/th | ./*/tr/th")]  # header cells of its own
    layout = [t for t in tables if t not in data]
    assert layout and all(t.get("role") == "presentation" for t in layout)
    assert all(t.get("role") is None for t in data)  # the issue's own tables keep their meaning
    preheader = doc.body[0]
    assert preheader.text_content().startswith(edition.preheader)
    style = preheader.get("style").replace(" ", "")
    assert "display:none" in style and "color" not in style


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    source = axe_source()
    with chromium_browser() as chromium:
        chromium.axe = source
        yield chromium


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_axe_finds_no_moderate_or_worse_violation_in_the_email(
        browser: Any, compose_ws: Path, settings: Settings, lang: str, scheme: str) -> None:
    _, html = email_html(compose_ws, settings, lang)
    page = browser.new_page(color_scheme=scheme)  # the email has dark-mode styles too
    page.set_content(html)
    try:
        assert_accessible(page, browser.axe, f"the {lang} email ({scheme})", PAGE_LEVEL_RULES)
    finally:
        page.close()
