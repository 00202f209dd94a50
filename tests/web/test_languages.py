"""Every page and mail string exists in en, fr and es, and the language choice is predictable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from newsletter.web.language import accept_language, choose_language
from newsletter.web.pages import TEMPLATES

LOCALES = Path(__file__).parents[2] / "newsletter" / "locales"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _catalog(lang: str) -> dict[str, str]:
    with (LOCALES / lang / "LC_MESSAGES" / "web.po").open("rb") as fh:
        return {m.id: m.string for m in read_po(fh) if m.id}


def _template_strings() -> set[str]:
    found: set[str] = set()
    for path in TEMPLATES.rglob("*.*"):
        found.update(re.findall(r'_\("((?:[^"\\]|\\.)*)"', path.read_text(encoding="utf-8")))
    return found


@pytest.mark.parametrize("lang", ["fr", "es"])
def test_every_string_is_translated_with_the_same_placeholders(lang: str) -> None:
    english, other = _catalog("en"), _catalog(lang)
    assert set(other) == set(english)
    for msgid, text in other.items():
        assert text, f"{lang}: untranslated {msgid!r}"
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(msgid)), msgid


def test_every_template_string_is_in_the_catalog() -> None:
    missing = _template_strings() - set(_catalog("en"))
    assert not missing


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"preference": "es", "query": "fr", "header": "en"}, "es"),
        ({"query": "fr", "header": "es"}, "fr"),
        ({"header": "de-DE,es;q=0.8,fr;q=0.9"}, "fr"),
        ({"header": "de", "default": "es"}, "es"),
        ({"header": "xx;q=abc, ,;"}, "en"),
        ({"query": "es", "allowed": ["en", "fr"]}, "en"),
        ({"preference": "fr-CA"}, "fr"),
        ({"header": "fr;q=0, es"}, "es"),
    ],
)
def test_language_choice_order(kwargs: dict, expected: str) -> None:
    assert choose_language(**kwargs) == expected


def test_accept_language_sorts_by_quality_then_position() -> None:
    assert accept_language("en;q=0.5, fr-FR, es;q=0.9") == ["fr", "es", "en"]
