"""The subscriber's language on a list: one policy for every front door and every reader.

A list offers some languages and names one of them its default. A subscriber has one language
for all their lists (or none); on a given list they read it when the list offers it, else the
list's default: that is their *effective* language there, in Python (`effective`) and in SQL
(`effective_sql`, for the send queries and counts).

A requested language (CLI `subscribers add`, a CSV cell, the subscribe form, the preferences
page) is matched the same way everywhere: a code the list offers ("fr"), a regional variant of
one ("fr_CA" -> "fr") or a language name ("Français", "French"). What is not matched is either
refused with a one-line error (REJECT: the CLI, import rows, the preferences page) or replaced
by the list's default (FALL_BACK: the subscribe form, whose visitors cannot be asked twice).

The languages the web pages and system mails are translated into are another concept:
newsletter.i18n.LANGUAGES.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import ColumnElement, case, literal

from newsletter.audience.columns import language_from_name
from newsletter.errors import ValidationError

Policy = Literal["reject", "fall back"]
REJECT: Policy = "reject"
FALL_BACK: Policy = "fall back"


class LanguageError(ValidationError):
    """A requested language the list does not offer (one line, for people)."""

    field = "language"


@lru_cache(maxsize=256)
def _decoded(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def offered_languages(languages: Sequence[str] | str | None, default: str) -> tuple[str, ...]:
    """The languages a list offers, from its `languages` column as any driver returns it (a
    list, or JSON text from a raw SQLite cursor); its default alone when the column is empty."""
    if isinstance(languages, str):
        languages = _decoded(languages)
    return tuple(languages or ()) or (default,)


# A list's language code as `lists add --languages` and lists.toml take it.
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")


def parse_languages(text: str) -> list[str]:
    """'en, FR,es' -> ['en', 'fr', 'es'], rejecting anything that is not a language tag."""
    langs = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not langs:
        raise ValidationError("at least one language is required (e.g. en,fr,es)")
    for lang in langs:
        if not LANGUAGE_CODE.fullmatch(lang):
            raise ValidationError(f"{lang!r} is not a language code (use e.g. en, fr, es, pt-br)")
    return list(dict.fromkeys(langs))


def normalize(raw: str) -> str:
    """' FR_ca ' -> 'fr-ca': how a requested code is compared."""
    return raw.strip().lower().replace("_", "-")


@dataclass(frozen=True)
class ListLanguages:
    """The languages one list (or, on the preferences page, a set of lists) offers."""

    offered: tuple[str, ...]
    default: str
    # Who offers them, for error messages: "list 'news'", "your newsletters".
    owner: str = "the list"

    @classmethod
    def of(cls, mlist: Mapping[str, Any] | Any) -> ListLanguages:
        """From a lists row (a mapping) or an object with languages, default_language, slug."""
        get = mlist.get if isinstance(mlist, Mapping) else lambda key: getattr(mlist, key, None)
        return list_languages(get("languages"), str(get("default_language")), get("slug") or "")

    @classmethod
    def union(cls, lists: Iterable[ListLanguages], default: str, owner: str) -> ListLanguages:
        """Every language any of `lists` offers, in order of appearance."""
        return _union(tuple(lists), default, owner)

    def match(self, raw: str | None) -> str:
        """The offered code `raw` names (code, regional variant or name), or ''."""
        if not raw or not raw.strip():
            return ""
        code = normalize(raw)
        if code in self.offered:
            return code
        if (base := code.split("-")[0]) in self.offered:
            return base
        named = language_from_name(raw, self.offered)
        return named if named in self.offered else ""

    def accept(self, requested: str | None, policy: Policy) -> str:
        """The language to store for a request: the matched offered code; for an empty
        request the default; otherwise the default (FALL_BACK) or a LanguageError (REJECT)."""
        found = self.match(requested)
        if found:
            return found
        if not requested or not requested.strip() or policy == FALL_BACK:
            return self.default
        raise LanguageError(self.refusal(requested))

    def refusal(self, requested: str) -> str:
        """The one-line reason a language is refused."""
        return (f"language {requested.strip()!r} is not offered by {self.owner} "
                f"({', '.join(self.offered)})")

    def effective(self, language: str | None) -> str:
        """The language a subscriber whose own is `language` reads this list in."""
        return language if language in self.offered else self.default

    def effective_sql(self, column: ColumnElement[Any]) -> ColumnElement[str]:
        """`effective` as a SQL expression over a subscribers.language column."""
        return case((column.in_(self.offered), column), else_=literal(self.default))


def list_languages(languages: Sequence[str] | str | None, default: str,
                   slug: str = "") -> ListLanguages:
    """A list's ListLanguages from its columns; made once per distinct list (the preferences
    page builds one per list shown, on every request)."""
    key = languages if isinstance(languages, str) else tuple(languages or ())
    return _list_languages(key, default, slug)


@lru_cache(maxsize=1024)
def _list_languages(languages: tuple[str, ...] | str, default: str, slug: str) -> ListLanguages:
    owner = f"list {slug!r}" if slug else "the list"
    return ListLanguages(offered_languages(languages, default), default, owner)


@lru_cache(maxsize=1024)
def _union(lists: tuple[ListLanguages, ...], default: str, owner: str) -> ListLanguages:
    offered = tuple(dict.fromkeys(code for one in lists for code in one.offered))
    return ListLanguages(offered or (default,), default, owner)


def effective_language(language: str | None, languages: Sequence[str] | str | None,
                       default: str) -> str:
    """`ListLanguages.effective` for a row's own columns (language, languages, default)."""
    if language is None:
        return default
    return language if language in offered_languages(languages, default) else default
