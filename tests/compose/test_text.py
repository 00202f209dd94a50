"""The plain-text part is written from the Markdown structure and stays readable."""

from __future__ import annotations

from newsletter.compose.blocks import keep, parse_body
from newsletter.compose.text import TextWriter


def _text(markdown: str) -> tuple[str, list[str]]:
    writer = TextWriter()
    body = writer.document(parse_body(markdown, "en.md", 1, keep, True))
    return body, writer.links.urls


def test_nested_lists_keep_markers_and_hanging_indents() -> None:
    body, _ = _text("3. Third\n4. Fourth, with:\n   - a nested point that is long enough to "
                    "wrap past the seventy-eight column limit of the text part\n")
    assert body.splitlines() == [
        "3. Third",
        "4. Fourth, with:",
        "   - a nested point that is long enough to wrap past the seventy-eight column",
        "     limit of the text part",
    ]


def test_tables_align_when_they_fit_and_become_records_when_not() -> None:
    body, _ = _text("| Date | Event |\n|---|---|\n| 2 Dec | Webinar |\n")
    assert body.splitlines() == ["Date   Event", "-----  -------", "2 Dec  Webinar"]
    wide = "| " + " | ".join(["A long column header"] * 4) + " |\n|---|---|---|---|\n| " + \
        " | ".join(["cell value"] * 4) + " |\n"
    body, _ = _text(wide)
    assert body.splitlines()[0] == "A long column header: cell value"


def test_quotes_code_and_sections() -> None:
    body, _ = _text("> Quoted\n> text\n\n---\n\n```\ncode  kept\n```\n")
    assert body == "> Quoted text\n\n* * *\n\n    code  kept"


def test_links_are_numbered_once_per_url_and_autolinks_stay_inline() -> None:
    body, urls = _text("[One](https://a.org) and [again](https://a.org), [two](https://b.org), "
                       "<https://c.org> and [anchor](#top).\n")
    assert body == ("One\u00a0[1] and again\u00a0[1], two\u00a0[2], https://c.org and anchor.")
    assert urls == ["https://a.org", "https://b.org"]


def test_images_show_alt_caption_and_credit_buttons_show_their_url() -> None:
    body, _ = _text('![Two people at a desk](a.png "At the office")\n*Photo: Jane Doe*\n\n'
                    "[Register now](https://example.org/register){.button}\n")
    assert body == ("[Two people at a desk]\nAt the office — Photo: Jane Doe\n\n"
                    "» Register now: https://example.org/register")
