"""A table of dates and events reads well on a 375 px phone: no word is cut across lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.compose.preview import write_preview
from newsletter.config import Settings
from tests.compose.test_browser import ARTIFACTS, browser  # noqa: F401 - the fixture

EVENTS = {
    "en": """## December's dates

| Date | Event | Place |
|------|-------|-------|
| 3 December 2026 | Intergovernmental consultation on labour migration | Geneva, UN |
| 10 December 2026 | Human Rights Day: accountability and documentation workshop | Online |
| 18 December 2026 | International Migrants Day | Everywhere |
""",
    "fr": """## Les dates de décembre

| Date | Événement | Lieu |
|------|-----------|------|
| 3 décembre 2026 | Consultation intergouvernementale sur les migrations | Genève, ONU |
| 10 décembre 2026 | Journée des droits humains : atelier de documentation | En ligne |
| 18 décembre 2026 | Journée internationale des migrants | Partout |
""",
}

# Every word of every table cell, measured: a word cut across two lines has two boxes.
SPLIT_WORDS = """() => {
  const cut = [];
  for (const cell of document.querySelectorAll('table:has(> thead) td, table:has(> thead) th')) {
    if (!cell.getClientRects().length) continue;  // hidden (the header row on a phone)
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const re = /[^\\s\\u00a0\\u202f-]+/g;
      let m;
      while ((m = re.exec(node.data)) !== null) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top)));
        if (lines.size > 1) cut.push(m[0]);
      }
    }
  }
  return cut;
}"""


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_a_table_of_dates_keeps_every_word_whole_on_a_phone(browser, make_issue,  # noqa: F811
                                                           compose_ws: Path, settings: Settings,
                                                           lang: str) -> None:
    make_issue("dates", {f"{lang}.md": EVENTS[lang]})
    out = compose_ws / "preview"
    write_preview(compose_ws, "dates", settings, [lang], out)
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (375, 600):
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto((out / f"{lang}.html").as_uri())
        page.wait_for_load_state("load")
        cut = page.evaluate(SPLIT_WORDS)
        words = page.evaluate("document.querySelector('table:has(> thead)').innerText")
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        page.locator("table:has(> thead)").screenshot(
            path=str(ARTIFACTS / f"table-{lang}-{width}.png"))
        page.close()
        assert "Gen" in words and "2026" in words  # the table is there and shown
        assert cut == [], f"words cut across lines at {width}px: {cut}"
        assert scroll_width <= width


WIDE = """| a | b | c | d | e | f |
|---|---|---|---|---|---|
|Internationalisation|Responsibilities|Accountability|Documentation|Participation|Visibility|
"""


@pytest.mark.browser
def test_a_table_too_wide_for_the_email_stacks_instead_of_cutting_words(
        browser, make_issue, compose_ws: Path, settings: Settings) -> None:  # noqa: F811
    make_issue("wide", {"en.md": WIDE})
    out = compose_ws / "preview"
    write_preview(compose_ws, "wide", settings, ["en"], out)
    page = browser.new_page(viewport={"width": 600, "height": 900})
    page.goto((out / "en.html").as_uri())
    cut = page.evaluate(SPLIT_WORDS)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    page.close()
    assert cut == [] and scroll_width <= 600
