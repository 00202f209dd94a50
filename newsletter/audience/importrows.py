"""The per-row rules of an import: raw CSV cells in, a NewRow or the reason to reject them out.

A row with more cells than the header, a cell with a control character (NUL included, which
PostgreSQL refuses and SQLite would store) or over 1,000 characters, an invalid address, a
formula-like cell and a language the list lacks are each rejected; a name with line breaks or
extra spaces is collapsed with a warning. audience/importer.py streams the file through it.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass
from functools import cached_property

from newsletter.audience.addresses import AddressError, normalize_email
from newsletter.audience.columns import CONTROL, Columns
from newsletter.audience.csvrecords import Record
from newsletter.audience.language import REJECT, LanguageError, ListLanguages
from newsletter.audience.lists import ListInfo
from newsletter.audience.names import MAX_NAME, clean_name
from newsletter.audience.subscribers import NewRow
from newsletter.db.bulk import KnownRow, attributes
from newsletter.errors import ValidationError

FORMULA = re.compile(r"^[=@]|^[+-]\s*[A-Za-z(]|^[\t\r]")
FORMULA_START = frozenset("=@+-\t\r")
MAX_CELL = 1000


@dataclass
class RowChecker:
    """Turns raw cells into a NewRow or a reason to reject them."""

    lst: ListInfo
    columns: Columns
    fallback_language: bool = False
    check_dns: bool = False

    def __post_init__(self) -> None:
        c = self.columns
        missing = c.width  # cells are padded to one past the header: a column not in the file

        def at(i: int | None) -> int:
            return missing if i is None else i

        self._at = (at(c.email), at(c.name), at(c.surname), at(c.language))
        self._languages: dict[str, tuple[str, str]] = {}
        self._extra = c.extra

    def check(self, line: int, cells: list[str],
              known: Container[str] = ()) -> tuple[NewRow | None, str, list[str]]:
        """(row or None, email shown in the report, reasons or warnings).

        An address in `known` (stored subscribers' addresses, so already in the normalized
        form) is taken as it is, unless DNS is checked: only a new or changed address needs
        validating.
        """
        at_email, at_name, at_surname, at_language = self._at
        width = self.columns.width
        text, n = "".join(cells), len(cells)
        if n > width or len(text) > MAX_CELL or not text.isprintable():
            problem = self._cells_problem(cells)
            if problem:
                return None, shown(self._cell(cells, at_email)), [problem]
        if n <= width:
            cells = cells + [""] * (width + 1 - n)
        email = cells[at_email].strip()
        if email not in known or self.check_dns:
            try:
                email = normalize_email(email, check_dns=self.check_dns)
            except AddressError as exc:
                return None, shown(email), [str(exc)]
        first, last = cells[at_name].strip(), cells[at_surname].strip()
        for value in (first, last):
            if value and value[0] in FORMULA_START and FORMULA.match(value):
                return None, email, [f"name looks like a spreadsheet formula: {value[:40]!r}"]
        attrs: dict[str, str] = {}
        for i, header in self._extra:
            value = cells[i].strip()
            if value:
                if value[0] in FORMULA_START and FORMULA.match(value):
                    return None, email, [f"{header} looks like a spreadsheet formula: "
                                         f"{value[:40]!r}"]
                attrs[header] = value
        raw_name = f"{first} {last}" if first and last else first or last
        # clean_name's answer, got without calling it for the usual printable short name.
        name = " ".join(raw_name.split())
        if len(name) > MAX_NAME or not name.isprintable():
            try:
                name = clean_name(raw_name)
            except ValidationError as exc:
                return None, email, [str(exc)]
        warnings: list[str] = []
        if name != raw_name:
            warnings.append("line breaks or extra spaces in the name were collapsed")
        raw_language = cells[at_language].strip()
        language, problem = self._languages.get(raw_language) or self.language(raw_language)
        if problem:
            if not language:
                return None, email, [problem]
            warnings.append(problem)
        return NewRow(email, name, language, attrs, line, not raw_language), email, warnings

    def unchanged(self, cells: list[str], stored: KnownRow) -> str:
        """The row's language when the row would change nothing on this stored subscriber (its
        address cell being the stored address) and pass every check without a word; else ''
        (then `check` says what the row is).

        A cheap comparison of the cells with what is stored: a row of a file imported before.
        Whatever could make `check` reject, warn or change something (a formula-like cell, an
        unknown or missing language, a name to collapse) is left to `check`.
        """
        width = self.columns.width
        text = "".join(cells)
        if len(cells) != width or len(text) > MAX_CELL or not text.isprintable():
            return ""
        cells = [*cells, ""]  # a column not in the file (see _at) reads as empty
        _, at_name, at_surname, at_language = self._at
        _, _, name, language, stored_attributes, _ = stored
        raw_language = cells[at_language].strip()
        code, problem = self.language(raw_language)
        # No language cell: the list's default, which never replaces a stored language.
        if problem or (code != language if raw_language else not language):
            return ""
        first, last = cells[at_name].strip(), cells[at_surname].strip()
        given = f"{first} {last}" if first and last else first or last
        if given and (given != name or "  " in given or len(given) > MAX_NAME
                      or first[:1] in FORMULA_START or last[:1] in FORMULA_START):
            return ""
        known = attributes(stored_attributes)
        for i, header in self.columns.extra:
            value = cells[i].strip()
            if value and (value[0] in FORMULA_START or known.get(header) != value):
                return ""
        return code

    def addresses(self, records: list[Record]) -> list[str | None]:
        """Each record's address cell as a stored subscriber's would read, or None when it
        cannot be one (no such cell; a control character, which PostgreSQL would refuse in a
        query)."""
        at = self._at[0]
        return [cells[at].strip() if at < len(cells) and cells[at].isprintable() else None
                for _, cells, _ in records]

    def _cell(self, cells: list[str], at: int) -> str:
        return cells[at].strip() if at < len(cells) else ""

    def _cells_problem(self, cells: list[str]) -> str:
        """Why the raw cells cannot be stored as they are, or ''."""
        width = self.columns.width
        if len(cells) > width and any(c.strip() for c in cells[width:]):
            return (f"{len(cells)} cells but the header has {width} columns "
                    "(quote any cell that contains the delimiter)")
        text = "".join(cells)
        if len(text) > MAX_CELL and max(map(len, cells)) > MAX_CELL:
            i = next(i for i, value in enumerate(cells) if len(value) > MAX_CELL)
            return f"{self._label(i)} is longer than {MAX_CELL} characters"
        if text.isprintable() or not CONTROL.search(text):  # every control is unprintable
            return ""
        for i, value in enumerate(cells):
            if match := CONTROL.search(value):
                char = match.group()
                what = "a NUL character" if char == "\x00" else "a control character"
                return f"{self._label(i)} contains {what} (U+{ord(char):04X})"
        return ""

    def _label(self, i: int) -> str:
        known: dict[int | None, str] = {self.columns.email: "email", self.columns.name: "name",
                                        self.columns.surname: "name",
                                        self.columns.language: "language",
                                        **dict(self.columns.extra)}
        return known.get(i) or f"column {i + 1}"

    @cached_property
    def languages(self) -> ListLanguages:
        return ListLanguages.of(self.lst)

    def language(self, raw: str) -> tuple[str, str]:
        """(code or '', problem or ''): a code, a regional variant or a name like 'Français'."""
        known = self._languages.get(raw)
        if known is None:
            known = self._language(raw)
            if len(self._languages) < 1000:  # a file names few languages, however it spells them
                self._languages[raw] = known
        return known

    def _language(self, raw: str) -> tuple[str, str]:
        languages = self.languages
        try:
            return languages.accept(raw, REJECT), ""
        except LanguageError as exc:
            if self.fallback_language:
                return languages.default, f"{exc}; using {languages.default!r}"
            return "", str(exc)


def blank(cells: list[str]) -> bool:
    """No cell holds anything but whitespace (a blank line, or only delimiters)."""
    return not "".join(cells).strip()


def shown(text: str) -> str:
    """A cell as the report may print it: short, with control characters escaped."""
    short = text[:100] + ("..." if len(text) > 100 else "")
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", short)

