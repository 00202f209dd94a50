"""The example issue compiles in every language into standards-conformant HTML and text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import html as lxml_html

from newsletter.compose import Slots, compile_issue, load_issue
from newsletter.config import Settings
from tests.compose.conftest import EXAMPLE

FOOTER = {
    "en": ("Unsubscribe", "Manage preferences", "View in browser"),
    "fr": ("Se désabonner", "Gérer mes préférences", "Voir dans le navigateur"),
    "es": ("Darse de baja", "Gestionar preferencias", "Ver en el navegador"),
}
ALICE = Slots(name="Alice", unsubscribe_url="https://news.example.org/unsubscribe/TOKEN-U",
              preferences_url="https://news.example.org/preferences/TOKEN-P")


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_example_issue_compiles_to_conformant_html(compose_ws: Path, settings: Settings,
                                                    lang: str) -> None:
    source = load_issue(compose_ws, EXAMPLE)
    edition = compile_issue(source, lang, settings)
    html, text = edition.fill(ALICE)
    doc = lxml_html.fromstring(html)
    assert doc.get("lang") == lang
    assert 'name="color-scheme" content="light dark"' in html
    assert 'name="supported-color-schemes"' in html
    assert edition.preheader in html  # mj-preview
    layout = [t for t in doc.iter("table") if not t.xpath("./thead|./tr/th")]  # not data tables
    assert layout and all(t.get("role") == "presentation" for t in layout)
    assert all(img.get("alt") is not None for img in doc.iter("img"))
    assert "max-width:600px" in html
    for word in FOOTER[lang]:
        assert word in html
    assert FOOTER[lang][0] in text and FOOTER[lang][1] in text
    assert "TOKEN-U" in html and "TOKEN-U" in text
    assert edition.html_size < 102 * 1024
    assert edition.date == "2026-11-20" and edition.volume == "9" and edition.number == "11"


def test_markdown_becomes_sections_image_caption_and_button(compose_ws: Path,
                                                            settings: Settings) -> None:
    edition = compile_issue(load_issue(compose_ws, EXAMPLE), "en", settings)
    html, _ = edition.fill(ALICE)
    doc = lxml_html.fromstring(html)
    image = next(i for i in doc.iter("img") if "regional-meeting" in i.get("src", ""))
    assert image.get("alt").startswith("Illustration: nine figures")
    assert re.search(r"regional-meeting\.[0-9a-f]{10}\.png", image.get("src"))
    assert image.get("src").startswith("https://news.example.org/archive/en/2026/")
    assert "Members gathered for the Asia-Pacific" in html
    assert "Illustration: Coalition communications team" in html
    button = next(a for a in doc.iter("a") if a.text_content().strip() == "Sign the statement")
    assert button.get("href") == "https://example.org/coalition/statement/sign"
    assert "background:#0b5cad" in button.get("style")
    assert html.count("<table") > 10 and "<th" in html  # the events table survived
    assert "<sup" in html and "position paper" in html  # footnote and its note


def test_subscriber_name_cannot_inject_markup(compose_ws: Path, settings: Settings) -> None:
    edition = compile_issue(load_issue(compose_ws, EXAMPLE), "en", settings)
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    html, text = edition.fill(Slots(name=evil, unsubscribe_url="https://u/?a=1&b=2"))
    assert "<script>alert(1)" not in html and "onerror=alert(2)>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;" in html
    assert "https://u/?a=1&amp;b=2" in html
    assert f"Dear {evil}," in text and "https://u/?a=1&b=2" in text


def test_empty_name_falls_back_to_the_editors_default(compose_ws: Path,
                                                      settings: Settings) -> None:
    edition = compile_issue(load_issue(compose_ws, EXAMPLE), "fr", settings)
    html, text = edition.fill(Slots())
    assert "Bonjour à toutes et à tous," in text and "Bonjour à toutes et à tous," in html


def test_web_version_carries_no_personal_links(compose_ws: Path, settings: Settings) -> None:
    edition = compile_issue(load_issue(compose_ws, EXAMPLE), "es", settings)
    web = edition.web_html
    assert "qxslot" not in web and "Darse de baja" not in web
    assert "https://news.example.org/manage" in web
    assert "https://news.example.org/subscribe/news" in web
    assert 'src="regional-meeting.png"' in web  # relative: the archive copies and hashes it
    assert "Hola, amigas y amigos:" in web
    assert len(edition.content_hash) == 64


def test_text_part_reads_well(compose_ws: Path, settings: Settings) -> None:
    edition = compile_issue(load_issue(compose_ws, EXAMPLE), "en", settings)
    _, text = edition.fill(ALICE)
    for line in text.splitlines():
        assert len(line) <= 78 or re.search(r"https?://\S{30,}", line), line
    assert "Updates from members\n--------------------" in text
    assert "- Asia-Pacific preparatory meeting. Twelve organisations" in text
    assert "summary\u00a0[1]." in text  # the reference stays with its word
    refs = text[text.index("\nLinks\n"):]
    assert "[1] https://example.org/coalition/bangkok-summary" in refs
    assert "[2] https://example.org/coalition/youth-brief" in refs
    assert "» Sign the statement: https://example.org/coalition/statement/sign" in text
    assert "pathways.¹" in text and "¹ The full text is based" in text
    assert "<" not in text.replace("<b>", "")  # no markup leaks into the text part
    assert "Unsubscribe: https://news.example.org/unsubscribe/TOKEN-U" in text


def test_text_part_uses_french_punctuation(compose_ws: Path, settings: Settings) -> None:
    _, text = compile_issue(load_issue(compose_ws, EXAMPLE), "fr", settings).fill(ALICE)
    # A narrow no-break space before the colon, no-break spaces inside the date.
    assert "Se désabonner\u202f: https://news.example.org/unsubscribe/TOKEN-U" in text
    assert "Vol. 9, n°\u00a011 · 20\u00a0novembre\u00a02026" in text


def test_fill_costs_no_template_render(compose_ws: Path, settings: Settings) -> None:
    edition = compile_issue(load_issue(compose_ws, EXAMPLE), "en", settings)
    assert set(edition.slot_keys) == {"name", "unsubscribe_url", "preferences_url", "web_url"}
    assert "{{slot:unsubscribe_url}}" in edition.html_shell
    first = edition.fill(ALICE)
    assert edition.fill(ALICE) == first
    assert edition.fill_html(ALICE) == first[0] and edition.fill_text(ALICE) == first[1]


def test_attributes_and_slot_urls_in_markdown(make_issue, compose_ws: Path,
                                              settings: Settings) -> None:
    make_issue("slots", {"en.md": (
        "Hello {{ attr.organisation | default('member') }}.\n\n"
        "[Update your details]({{ preferences_url }}) or [leave]({{ unsubscribe_url }}).\n")})
    edition = compile_issue(load_issue(compose_ws, "slots"), "en", settings)
    html, text = edition.fill(Slots(preferences_url="https://p/1?x=1&y=2",
                                    attributes={"organisation": "Caritas & Co"}))
    assert "Hello Caritas &amp; Co." in html and "Hello Caritas & Co." in text
    assert 'href="https://p/1?x=1&amp;y=2"' in html and "https://p/1?x=1&y=2" in text
    assert "Hello member." in edition.fill(Slots())[1]


def test_raw_html_is_sanitized_unless_the_issue_opts_out(make_issue, compose_ws: Path,
                                                         settings: Settings) -> None:
    body = 'Text <span onclick="steal()" style="color:red">kept</span><script>bad()</script>\n'
    make_issue("raw", {"en.md": body})
    html, _ = compile_issue(load_issue(compose_ws, "raw"), "en", settings).fill(Slots())
    assert "kept" in html and "onclick" not in html and "bad()" not in html
    make_issue("trusted", {"en.md": 'A <span data-x="1">kept</span>\n'},
               issue_toml='list = "news"\ndate = 2026-11-20\nallow_raw_html = true\n')
    html, _ = compile_issue(load_issue(compose_ws, "trusted"), "en", settings).fill(Slots())
    assert 'data-x="1"' in html


def test_decorative_images_get_an_empty_alt(make_issue, compose_ws: Path,
                                            settings: Settings) -> None:
    make_issue("deco", {"en.md": "![a flourish](https://example.org/rule.png){.decorative}\n\n"
                                 "Text ![a dot](https://example.org/dot.png){.decorative} here.\n"})
    html, text = compile_issue(load_issue(compose_ws, "deco"), "en", settings).fill(Slots())
    images = [i for i in lxml_html.fromstring(html).iter("img") if "example.org" in i.get("src")]
    assert len(images) == 2 and all(i.get("alt") == "" for i in images)
    assert "flourish" not in text and "a dot" not in text


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_a_stored_edition_fills_every_recipient_exactly_as_the_compiled_one(
        compose_ws: Path, settings: Settings, lang: str) -> None:
    """What the send stores at enqueue and the workers load must mail the same bytes."""
    from newsletter.compose import CompiledEdition

    edition = compile_issue(load_issue(compose_ws, EXAMPLE), lang, settings)
    stored = edition.to_json()
    loaded = CompiledEdition.from_json(stored)
    bob = Slots(name="Bob <b>", unsubscribe_url="https://news.example.org/u/T",
                attributes={"organisation": "A & B"})
    assert loaded.fill(ALICE) == edition.fill(ALICE) and loaded.fill(bob) == edition.fill(bob)
    assert loaded == edition  # subject, shells as shown, sizes, web version, hash
    assert loaded.slot_keys == edition.slot_keys
    assert CompiledEdition.from_json(loaded.to_json()) == edition
    with pytest.raises(ValueError, match="format 99"):
        CompiledEdition.from_json(stored.replace('"format": 1', '"format": 99', 1))


def test_a_later_command_reuses_the_compiled_layout_and_sees_an_edited_one(
        compose_ws: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """The layout is compiled once, not by every command (a twentieth of a small send's CPU),
    and kept in the user's cache folder, not the workspace; a template edited since is
    compiled again, never served stale, and a damaged cache file only means compiling again."""
    import jinja2

    from newsletter.compose.layout import BUILTIN, _environment

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _environment.cache_clear()
    before = sorted(p.name for p in compose_ws.iterdir())

    text_layout = compose_ws / "templates" / "email" / "text.txt.j2"
    text_layout.parent.mkdir(parents=True)
    text_layout.write_text((BUILTIN / "email" / "text.txt.j2").read_text("utf-8") + "First.\n",
                           "utf-8")
    source = load_issue(compose_ws, EXAMPLE)
    first = compile_issue(source, "en", settings)
    kept = list((tmp_path / "cache" / "newsletter" / "templates").glob("*.cache"))
    assert kept and sorted(p.name for p in compose_ws.iterdir()) == before

    compiled: list[str] = []
    real = jinja2.Environment.compile

    def counted(self, source, name=None, filename=None, *args, **kw):
        compiled.append(name)
        return real(self, source, name, filename, *args, **kw)

    monkeypatch.setattr(jinja2.Environment, "compile", counted)
    _environment.cache_clear()  # as in the next command's process
    again = compile_issue(source, "en", settings)
    assert again.html_shell == first.html_shell and again.text_shell == first.text_shell
    assert compiled == []
    text_layout.write_text(text_layout.read_text("utf-8").replace("First.", "Edited."), "utf-8")
    _environment.cache_clear()
    edited = compile_issue(source, "en", settings)
    assert compiled == ["email/text.txt.j2"]
    assert "Edited." in edited.text_shell and "First." not in edited.text_shell
    for path in kept:  # cut in the middle of the compiled code
        path.write_bytes(path.read_bytes()[:200])
    _environment.cache_clear()
    assert compile_issue(source, "en", settings).html_shell == first.html_shell
