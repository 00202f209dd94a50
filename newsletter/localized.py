"""What the reader sees in their own language: texts given per language, and dates.

A "localized text" in newsletter.toml or lists.toml is either one string for every language or
a table `{ en = "...", fr = "...", es = "..." }`; a language missing from the table falls back
to the default language. Dates follow the reader's locale through Babel; `[languages.<code>]`
can choose the locale (`en_GB`) and the format (a Babel style or a CLDR pattern like "MMMM y").
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from babel.core import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_date_format

Localized = str | Mapping[str, str]

DATE_STYLES = ("short", "medium", "long", "full")
LANGUAGE_KEYS = ("locale", "date_format")
NBSP = "\u00a0"
# The day field of a CLDR pattern on its own ("d", not "dd"), outside quoted literals.
DAY_FIELD = re.compile(r"(?<![d'])d(?!d)")


def check_text(value: Any) -> Localized:
    """A localized text as configured, or ValueError saying what is wrong (one line)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"expected text or a table of languages, got {type(value).__name__}")
    if not value:
        raise ValueError("the table of languages is empty")
    for code, text in value.items():
        if not known_language(str(code)):
            raise ValueError(f"unknown language {code!r} (use codes like en, fr, es, pt-br)")
        if not isinstance(text, str):
            raise ValueError(f"the {code!r} text must be text, not {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"the {code!r} text is empty")
        if "\0" in text:
            raise ValueError(f"the {code!r} text contains a NUL byte")
    return {str(k).lower(): v for k, v in value.items()}


@lru_cache(maxsize=256)
def known_language(code: str) -> bool:
    """Whether Babel knows a language code ("fr", "pt-br", "en_GB")."""
    try:
        Locale.parse(code.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return False
    return True


def pick(value: Localized | None, language: str, default_language: str = "en") -> str:
    """The text for a language: its own, its base language's, the default's, else any."""
    if value is None or isinstance(value, str):
        return value or ""
    language = language.lower()
    for code in (language, language.split("-")[0], default_language.lower(),
                 default_language.split("-")[0].lower()):
        if value.get(code):
            return value[code]
    return next((text for text in value.values() if text), "")


def check_languages(value: Any) -> dict[str, dict[str, str]]:
    """The `[languages]` section: {code: {locale, date_format}}; ValueError when wrong."""
    if not isinstance(value, Mapping):
        raise ValueError("[languages] expected tables like [languages.en]")
    out: dict[str, dict[str, str]] = {}
    for code, options in value.items():
        if not known_language(str(code)):
            raise ValueError(f"[languages] unknown language {code!r}")
        if not isinstance(options, Mapping):
            raise ValueError(f"[languages.{code}] must be a table")
        for key, text in options.items():
            if key not in LANGUAGE_KEYS:
                raise ValueError(f"[languages.{code}] unknown key {key!r} "
                                 f"(known: {', '.join(LANGUAGE_KEYS)})")
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"[languages.{code}] {key}: expected text")
        locale = options.get("locale", code)
        if not known_language(locale):
            raise ValueError(f"[languages.{code}] locale: unknown locale {locale!r}")
        out[str(code).lower()] = {str(k): str(v) for k, v in options.items()}
    return out


def date_locale(language: str, languages: Mapping[str, Mapping[str, str]]) -> str:
    """The Babel locale a language's dates use ("en_GB" when configured, else "en")."""
    options = languages.get(language.lower()) or {}
    return str(options.get("locale") or language).replace("-", "_")


def format_day(day: dt.date, language: str,
               languages: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """A date as the reader's locale writes it ("1 February 2018", "1er février 2018")."""
    options = (languages or {}).get(language.lower()) or {}
    return _format_day(day, date_locale(language, languages or {}),
                       str(options.get("date_format") or "long"))


@lru_cache(maxsize=64)
def _day_format(locale: str, style: str) -> tuple[Locale, str, bool]:
    """The parsed locale, its date pattern and whether it is French, once per locale and style
    (parsing them again for every date was half the time of formatting it)."""
    parsed = Locale.parse(locale)
    pattern = (get_date_format(style, parsed).pattern  # type: ignore[arg-type]
               if style in DATE_STYLES else style)
    return parsed, pattern, parsed.language == "fr"


@lru_cache(maxsize=8192)
def _format_day(day: dt.date, locale: str, style: str) -> str:
    try:
        parsed, pattern, french = _day_format(locale, style)
        if french and day.day == 1:
            pattern = _first_of_month(pattern)
        text = format_date(day, format=pattern, locale=parsed)
    except (UnknownLocaleError, ValueError):
        return day.isoformat()
    # French keeps a date on one line: no-break spaces between its words.
    return text.replace(" ", NBSP) if french else text


def _first_of_month(pattern: str) -> str:
    """French writes the first day of a month as "1er": add the ordinal to the day field."""
    parts = pattern.split("'")
    # Even parts are outside quotes; a literal is quoted so Babel prints it as it is.
    return "'".join(DAY_FIELD.sub("d'er'", p) if i % 2 == 0 else p for i, p in enumerate(parts))


def format_clock(moment: dt.datetime, language: str,
                 languages: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """A time of day as the reader's locale writes it ("2:30 PM", "14:30"), in the time zone
    the moment carries."""
    try:
        return format_time(moment, "short", tzinfo=moment.tzinfo,  # type: ignore[arg-type]
                           locale=date_locale(language, languages or {}))
    except (UnknownLocaleError, ValueError):
        return moment.strftime("%H:%M")
