"""Per-language texts in newsletter.toml, dates in the reader's locale, French typography."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from newsletter.config import ConfigError, load_settings
from newsletter.localized import format_day
from newsletter.typography import NBSP, NNBSP, french_html, french_text, typeset_html

FEB_1 = dt.date(2018, 2, 1)


def settings_from(tmp_path: Path, toml: str):
    (tmp_path / "newsletter.toml").write_text(toml, encoding="utf-8")
    return load_settings(tmp_path, environ={})


def test_a_name_given_per_language_reads_in_each_language_with_the_default_as_fallback(
        tmp_path: Path) -> None:
    settings = settings_from(tmp_path, """[newsletter]
name = { en = "Network News", fr = "Nouvelles du réseau" }
organisation = "Coalition"
""")
    assert settings.text("newsletter", "name", "fr") == "Nouvelles du réseau"
    assert settings.text("newsletter", "name", "en") == "Network News"
    assert settings.text("newsletter", "name", "es") == "Network News"  # default language
    assert settings.text("newsletter", "organisation", "fr") == "Coalition"
    assert settings["newsletter"]["name"] == "Network News"  # code with no language


@pytest.mark.parametrize(("value", "message"), [
    ('{ en = "News", xx = "?" }', "[newsletter] name: unknown language 'xx'"),
    ('{ en = "News", fr = "" }', "[newsletter] name: the 'fr' text is empty"),
    ("{}", "[newsletter] name: the table of languages is empty"),
    ('{ en = 3 }', "[newsletter] name: the 'en' text must be text, not int"),
])
def test_a_wrong_language_table_is_one_clear_line(tmp_path: Path, value: str,
                                                   message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, f"[newsletter]\nname = {value}\n")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_wrong_language_options_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[languages.en\] locale: unknown locale 'en_XX'"):
        settings_from(tmp_path, '[languages.en]\nlocale = "en_XX"\n')
    with pytest.raises(ConfigError, match=r"\[languages.fr\] unknown key 'format'"):
        settings_from(tmp_path, '[languages.fr]\nformat = "MMMM y"\n')


def test_dates_follow_each_languages_locale_and_format(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, """[languages.en]
locale = "en_GB"
[languages.es]
date_format = "MMMM 'de' y"
""")
    assert format_day(FEB_1, "en", settings.languages) == "1 February 2018"
    assert format_day(FEB_1, "en") == "February 1, 2018"  # US style stays the plain default
    assert format_day(FEB_1, "es", settings.languages) == "febrero de 2018"  # a monthly
    assert format_day(FEB_1, "en", {"en": {"date_format": "MMMM y"}}) == "February 2018"


def test_french_writes_the_first_of_the_month_1er_on_one_line() -> None:
    assert format_day(FEB_1, "fr") == f"1er{NBSP}février{NBSP}2018"
    assert format_day(dt.date(2018, 2, 2), "fr") == f"2{NBSP}février{NBSP}2018"
    assert format_day(FEB_1, "fr", {"fr": {"date_format": "full"}}).startswith(f"jeudi{NBSP}1er")


@pytest.mark.parametrize(("before", "after"), [
    ("Titre : la suite", f"Titre{NNBSP}: la suite"),
    ("Titre: la suite", f"Titre{NNBSP}: la suite"),
    ("Vraiment ?! Oui !", f"Vraiment{NNBSP}?! Oui{NNBSP}!"),
    ("un ; deux", f"un{NNBSP}; deux"),
    ("« Bonjour »", f"«{NNBSP}Bonjour{NNBSP}»"),
    ("«Bonjour»", f"«{NNBSP}Bonjour{NNBSP}»"),
    ("1 000 km", f"1{NNBSP}000{NBSP}km"),
    ("25 % des membres", f"25{NBSP}% des membres"),
    ("à 10:30 précises", "à 10:30 précises"),
    ("voir https://example.org/page?x=1&y=2 !", f"voir https://example.org/page?x=1&y=2{NNBSP}!"),
    ("écrire à info@example.org ?", f"écrire à info@example.org{NNBSP}?"),
    ("a &amp; b ; c", f"a &amp; b{NNBSP}; c"),
    ("3 semaines", "3 semaines"),
])
def test_french_typography_in_text(before: str, after: str) -> None:
    assert french_html(before) == after
    assert french_html(after) == after  # applying it again changes nothing


def test_french_typography_leaves_tags_urls_code_and_styles_alone() -> None:
    html = ('<style>p { color: red !important; }</style>'
            '<p style="margin:0;"><a href="https://x.org/?q=1">Lien ?</a> Note: '
            '<code>a ? b : c</code> <pre>x : y</pre></p>')
    out = french_html(html)
    assert '<style>p { color: red !important; }</style>' in out
    assert '<p style="margin:0;"><a href="https://x.org/?q=1">' in out
    assert f"Lien{NNBSP}?</a> Note{NNBSP}: " in out
    assert "<code>a ? b : c</code> <pre>x : y</pre>" in out
    assert typeset_html(html, "en") == html  # English keeps its own rules
    assert french_text("[1] https://example.org/a?b=c:d") == "[1] https://example.org/a?b=c:d"
