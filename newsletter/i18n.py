"""Translations of the tool's own words (email footer, web pages, system mails).

Catalogs are gettext .po files under newsletter/locales/<lang>/LC_MESSAGES/<domain>.po, read
directly with Babel, so there is no compile step to forget. English is the source language.
"""

from __future__ import annotations

from functools import lru_cache
from gettext import NullTranslations
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.support import Translations

from newsletter.typography import typeset_text

LOCALES = Path(__file__).parent / "locales"
# The interface languages: what pages and system mails are translated into (a catalog each).
# Which languages a list's newsletters are written in is another matter: audience/language.py.
LANGUAGES = ("en", "fr", "es")


@lru_cache(maxsize=256)
def language_name(language: str) -> str:
    """A language's name in itself ("Français"), for switchers readers scan for their own."""
    tag = language.replace("-", "_")
    try:
        name = Locale.parse(tag).get_display_name(tag)
    except (UnknownLocaleError, ValueError, TypeError):
        return language
    return (name[:1].upper() + name[1:]) if name else language


def interface_language_names() -> dict[str, str]:
    """Each interface language's name in itself (CLDR data is read on first call, not at
    import: it cost every CLI command 50 ms)."""
    return {code: language_name(code) for code in LANGUAGES}


class _PoTranslations(Translations):
    def __init__(self, path: Path, domain: str, language: str) -> None:
        # Imported on first use: babel.messages (with difflib) is only needed to read a .po.
        from babel.messages.pofile import read_po

        super().__init__(domain=domain)
        with path.open("rb") as fh:
            catalog = read_po(fh)
        for message in catalog:
            if message.id and message.string and not message.fuzzy:
                key = message.id if isinstance(message.id, str) else message.id[0]
                value = message.string if isinstance(message.string, str) else message.string[0]
                # The language's typography is set once here, for every page and mail.
                self._catalog[key] = typeset_text(value, language)
        self.plural = catalog.plural_expr and (lambda n: int(n != 1))  # type: ignore[assignment]


@lru_cache(maxsize=64)
def translations(language: str, domain: str) -> NullTranslations:
    """The catalog for a language, falling back to English (the msgids) when missing."""
    path = LOCALES / language / "LC_MESSAGES" / f"{domain}.po"
    if not path.exists():
        path = LOCALES / language.split("-")[0].lower() / "LC_MESSAGES" / f"{domain}.po"
    if not path.exists():
        return NullTranslations()
    return _PoTranslations(path, domain, path.parent.parent.name)


def gettext(language: str, domain: str, message: str) -> str:
    """Translate one message."""
    return translations(language, domain).gettext(message)
