"""Which CSV column holds which field, and which language a cell names.

Spreadsheets arrive with headers in English, French or Spanish ("Courriel", "Nom", "Idioma"),
with accents, capitals and stray punctuation. Headers and language cells are compared by a key
that ignores case, accents, spaces and punctuation: headers against the one table below
(`--column FIELD=HEADER` names any other), language names against CLDR's names (via Babel)
written in English, French, Spanish or a language the list offers ("Français", "Inglés",
"Deutsch").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from babel import Locale, UnknownLocaleError

from newsletter.errors import NewsletterError
from newsletter.i18n import LANGUAGES

MAX_COLUMNS = 100
# C0 and C1 controls other than tab and line breaks: NUL is refused by PostgreSQL (and would be
# stored by SQLite), the others are invisible in a name and can rewrite the terminal.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

FIELDS = ("email", "name", "language")

# field -> headers recognised for it (en, fr, es and their usual variants); the first match wins.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "email": (
        "email", "e-mail", "mail", "email address", "e-mail address", "address",
        "courriel", "adresse courriel", "adresse e-mail", "adresse email", "adresse mail",
        "adresse électronique", "mél",
        "correo", "correo electrónico", "dirección de correo", "dirección de correo electrónico",
        "dirección de email", "email de contacto",
    ),
    "name": (
        "name", "full name", "fullname", "display name",
        "nom", "nom complet", "prénom nom", "prénom et nom",
        "nombre", "nombre completo", "nombre y apellidos",
    ),
    "language": (
        "language", "lang", "locale", "preferred language",
        "langue", "langue préférée", "idioma", "idioma preferido", "lengua",
    ),
}

# A name split in two columns is joined, first name first: "Prénom;Nom", "Nombre;Apellidos".
FIRST_NAME_HEADERS = ("first name", "firstname", "given name", "forename", "prénom",
                      "nombre de pila")
LAST_NAME_HEADERS = ("last name", "lastname", "surname", "family name", "nom de famille",
                     "apellido", "apellidos")
# Next to a first-name column these mean the family name (in French and Spanish files they do).
SHORT_NAME_HEADERS = ("name", "nom", "nombre")

# Language names are read in these languages (and in each language the list offers).
NAME_LANGUAGES = LANGUAGES


class ImportFileError(NewsletterError):
    """The file as a whole cannot be read (not the fault of one row)."""


def loose_key(text: str) -> str:
    """'  Correo Electrónico: ' -> 'correo electronico': no case, accents or punctuation."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain).split())


_FIELD_BY_KEY = {loose_key(h): f for f, headers in HEADER_ALIASES.items() for h in headers}
_FIRST = {loose_key(h) for h in FIRST_NAME_HEADERS}
_LAST = {loose_key(h) for h in LAST_NAME_HEADERS}
_SHORT = {loose_key(h) for h in SHORT_NAME_HEADERS}


@functools.lru_cache(maxsize=64)
def _codes_by_name(display: str) -> dict[str, str]:
    """Language names written in `display` (from CLDR, via Babel) -> language code."""
    try:
        names = Locale.parse(display.replace("-", "_")).languages
    except (ValueError, UnknownLocaleError):
        return {}
    return {loose_key(name): code for code, name in names.items() if "_" not in code}


def language_from_name(cell: str, offered: tuple[str, ...] | list[str] = ()) -> str:
    """'Français', 'French', 'Francés' -> 'fr'; '' when the cell names no language we know."""
    key = loose_key(cell)
    for display in (*NAME_LANGUAGES, *offered):
        if code := _codes_by_name(display).get(key):
            return code
    return ""


def parse_column_options(options: tuple[str, ...] | list[str]) -> dict[str, str]:
    """['email=Courriel'] -> {'email': 'Courriel'}, refusing unknown fields with one line."""
    out: dict[str, str] = {}
    for option in options:
        field, sep, header = option.partition("=")
        field = field.strip().lower()
        if not sep or not header.strip():
            raise ImportFileError(f"--column {option!r}: write FIELD=HEADER, e.g. "
                                  "--column email=Courriel")
        if field not in FIELDS:
            raise ImportFileError(f"--column {option!r}: unknown field {field!r} "
                                  f"(use {', '.join(FIELDS)})")
        out[field] = header.strip()
    return out


@dataclass(frozen=True)
class Columns:
    """Where the known fields are in the header; the rest become attributes."""

    email: int
    name: int | None
    language: int | None
    extra: tuple[tuple[int, str], ...]
    width: int
    header: tuple[str, ...] = ()
    surname: int | None = None  # joined after `name` when the name is split in two columns

    def describe(self) -> dict[str, Any]:
        """The mapping as the report shows it: field -> header (None when absent)."""
        def at(i: int | None) -> str | None:
            return self.header[i].strip() if i is not None else None

        name = at(self.name)
        if name is not None and self.surname is not None:
            name = f"{name} + {at(self.surname)}"
        return {"email": at(self.email), "name": name, "language": at(self.language),
                "attributes": [h for _, h in self.extra]}


def _find_named(header: list[str], wanted: str) -> int:
    exact = next((i for i, h in enumerate(header) if h.strip() == wanted), None)
    if exact is not None:
        return exact
    loose = next((i for i, h in enumerate(header) if loose_key(h) == loose_key(wanted)), None)
    if loose is None:
        found = ", ".join(repr(h.strip()) for h in header if h.strip()) or "nothing"
        raise ImportFileError(f"--column names {wanted!r} but the header has no such column "
                              f"(found: {found})")
    return loose


def map_columns(header: list[str], named: dict[str, str] | None = None) -> Columns:
    """Find the email, name and language columns: `named` first, then the alias table."""
    if len(header) > MAX_COLUMNS:
        raise ImportFileError(f"the header has {len(header)} columns; at most {MAX_COLUMNS}")
    if CONTROL.search("".join(header)):
        raise ImportFileError("the header contains a control character")
    found: dict[str, int] = {f: _find_named(header, h) for f, h in (named or {}).items()}
    for i, cell in enumerate(header):
        field = _FIELD_BY_KEY.get(loose_key(cell))
        if field and field not in found and i not in found.values():
            found[field] = i
    if "email" not in found:
        raise ImportFileError(
            f"no email column in the header (found: {', '.join(header) or 'nothing'}); "
            "name it with --column email=HEADER"
        )
    name, surname = (found.get("name"), None) if "name" in (named or {}) else _name_parts(
        header, found)
    taken = {*found.values(), name, surname}
    extra = tuple((i, header[i].strip()) for i in range(len(header))
                  if i not in taken and header[i].strip())
    return Columns(found["email"], name, found.get("language"), extra, len(header),
                   tuple(header), surname)


def _name_parts(header: list[str], found: dict[str, int]) -> tuple[int | None, int | None]:
    """(name column, surname column joined after it) when the name is split in two."""
    taken = set(found.values())
    keys = [loose_key(h) if i not in taken else "" for i, h in enumerate(header)]
    first = next((i for i, k in enumerate(keys) if k in _FIRST), None)
    last = next((i for i, k in enumerate(keys) if k in _LAST), None)
    name = found.get("name")
    short = name is not None and loose_key(header[name]) in _SHORT
    if first is not None and last is not None and (name is None or short):
        return first, last
    if first is not None and (name is None or short):
        return first, name
    if last is not None and (name is None or short):
        return name, last
    return name, None
