"""CSV import: stream rows, validate each, merge valid ones in batches, report every reject.

Memory stays bounded whatever the file size: rows are read, checked and written a batch at a
time; the only thing kept for the whole file is a set of 64-bit hashes of the addresses seen,
so a duplicate later in the file is reported as merged.

Per-row rules: a record the CSV reader cannot read (not UTF-8, over 64 KB, a quote never
closed), a row with more cells than the header, a cell with a control character (NUL included,
which PostgreSQL refuses and SQLite would store) or over 1,000 characters, an invalid address,
a formula-like cell and a language the list lacks are each rejected with their line; the rows
around them still land. A row the database refuses anyway is found by merging its batch one row
at a time, and rejected alone.

Transactions: by default each batch commits, so valid rows land even when others are bad.
With `strict` (or `dry_run`) everything runs in one transaction that is rolled back when any row
is rejected (or always, for a dry run), so the counts are exact and nothing lands.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from newsletter.audience.addresses import AddressError, normalize_email
from newsletter.audience.csvrecords import Record, read_records
from newsletter.audience.lists import ListInfo, get_list
from newsletter.audience.subscribers import MergeCounts, NewRow, clean_name, merge_batch
from newsletter.db.engine import is_sqlite
from newsletter.errors import NewsletterError, ValidationError

EMAIL_HEADERS = ("email", "e-mail", "email address", "e-mail address", "mail", "address")
NAME_HEADERS = ("name", "full name", "fullname", "display name")
LANGUAGE_HEADERS = ("language", "lang", "locale", "preferred language")
FORMULA = re.compile(r"^[=@]|^[+-]\s*[A-Za-z(]|^[\t\r]")
# C0 and C1 controls other than tab and line breaks: NUL is refused by PostgreSQL (and would be
# stored by SQLite), the others are invisible in a name and can rewrite the terminal.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MAX_CELL = 1000
MAX_COLUMNS = 100


class ImportFileError(NewsletterError):
    """The file as a whole cannot be read (not the fault of one row)."""


@dataclass(frozen=True)
class RowProblem:
    """A rejected row or a warning about a fixed one, with its line in the file."""

    line: int
    email: str
    reason: str


@dataclass
class ImportReport:
    """What an import did (or, for a dry run, would do)."""

    rows: int = 0
    accepted: int = 0
    duplicates_in_file: int = 0
    rejected: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)
    merge: MergeCounts = field(default_factory=MergeCounts)
    dry_run: bool = False
    strict: bool = False
    committed: bool = False

    def as_dict(self) -> dict[str, Any]:
        m = self.merge
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": len(self.rejected),
            "duplicates_in_file": self.duplicates_in_file,
            "created": m.created,
            "updated": m.updated,
            "unchanged": m.unchanged,
            "subscribed": m.subscribed,
            "confirmed": m.confirmed,
            "kept_unsubscribed": m.kept_unsubscribed,
            "dry_run": self.dry_run,
            "strict": self.strict,
            "committed": self.committed,
            "errors": [vars(p) for p in self.rejected],
            "warnings": [vars(p) for p in self.warnings],
        }


@dataclass(frozen=True)
class Columns:
    """Where the known fields are in the header; the rest become attributes."""

    email: int
    name: int | None
    language: int | None
    extra: tuple[tuple[int, str], ...]
    width: int


def map_columns(header: list[str]) -> Columns:
    """Find email, name and language columns by their header names (case-insensitive)."""
    if len(header) > MAX_COLUMNS:
        raise ImportFileError(f"the header has {len(header)} columns; at most {MAX_COLUMNS}")
    if CONTROL.search("".join(header)):
        raise ImportFileError("the header contains a control character")
    names = [h.strip().lower() for h in header]

    def find(choices: tuple[str, ...]) -> int | None:
        return next((i for i, n in enumerate(names) if n in choices), None)

    email = find(EMAIL_HEADERS)
    if email is None:
        raise ImportFileError(
            f"no email column in the header (found: {', '.join(header) or 'nothing'}); "
            "name one column 'email'"
        )
    name, language = find(NAME_HEADERS), find(LANGUAGE_HEADERS)
    taken = {email, name, language}
    extra = tuple((i, header[i].strip()) for i in range(len(header))
                  if i not in taken and header[i].strip())
    return Columns(email, name, language, extra, len(header))


@dataclass
class RowChecker:
    """Turns raw cells into a NewRow or a reason to reject them."""

    lst: ListInfo
    columns: Columns
    fallback_language: bool = False
    check_dns: bool = False

    def check(self, line: int, cells: list[str]) -> tuple[NewRow | None, str, list[str]]:
        """(row or None, email shown in the report, reasons or warnings)."""
        def cell(i: int | None) -> str:
            return cells[i].strip() if i is not None and i < len(cells) else ""

        raw_email = cell(self.columns.email)
        problem = self._cells_problem(cells)
        if problem:
            return None, shown(raw_email), [problem]
        try:
            email = normalize_email(raw_email, check_dns=self.check_dns)
        except AddressError as exc:
            return None, shown(raw_email), [str(exc)]
        warnings: list[str] = []
        for label, value in [("name", cell(self.columns.name)),
                             *((h, cell(i)) for i, h in self.columns.extra)]:
            if FORMULA.match(value):
                return None, email, [f"{label} looks like a spreadsheet formula: {value[:40]!r}"]
        raw_name = cell(self.columns.name)
        name = clean_name(raw_name)
        if name != raw_name.strip():
            warnings.append("line breaks or extra spaces in the name were collapsed")
        language, problem = self._language(cell(self.columns.language))
        if problem and not language:
            return None, email, [problem]
        if problem:
            warnings.append(problem)
        attrs = {h: cell(i) for i, h in self.columns.extra if cell(i)}
        return NewRow(email=email, name=name, language=language, attributes=attrs,
                      line=line), email, warnings

    def _cells_problem(self, cells: list[str]) -> str:
        """Why the raw cells cannot be stored as they are, or ''."""
        width = self.columns.width
        if len(cells) > width and any(c.strip() for c in cells[width:]):
            return (f"{len(cells)} cells but the header has {width} columns "
                    "(quote any cell that contains the delimiter)")
        if max(map(len, cells), default=0) > MAX_CELL:
            i = next(i for i, value in enumerate(cells) if len(value) > MAX_CELL)
            return f"{self._label(i)} is longer than {MAX_CELL} characters"
        if not CONTROL.search("".join(cells)):
            return ""
        for i, value in enumerate(cells):
            if match := CONTROL.search(value):
                char = match.group()
                what = "a NUL character" if char == "\x00" else "a control character"
                return f"{self._label(i)} contains {what} (U+{ord(char):04X})"
        return ""

    def _label(self, i: int) -> str:
        known: dict[int | None, str] = {self.columns.email: "email", self.columns.name: "name",
                                        self.columns.language: "language",
                                        **dict(self.columns.extra)}
        return known.get(i) or f"column {i + 1}"

    def _language(self, raw: str) -> tuple[str, str]:
        offered = self.lst.languages
        if not raw:
            return self.lst.default_language, ""
        lang = raw.strip().lower().replace("_", "-")
        if lang in offered:
            return lang, ""
        base = lang.split("-")[0]
        if base in offered:
            return base, ""
        langs = ", ".join(offered)
        message = f"language {raw!r} is not offered by list {self.lst.slug!r} ({langs})"
        if self.fallback_language:
            return self.lst.default_language, message + f"; using {self.lst.default_language!r}"
        return "", message


def shown(text: str) -> str:
    """A cell as the report may print it: short, with control characters escaped."""
    short = text[:100] + ("..." if len(text) > 100 else "")
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", short)


ProgressFn = Callable[[int], None]


@dataclass
class Importer:
    """One import run over one file."""

    engine: Engine
    lst: ListInfo
    address_key: str
    confirmed: bool = False
    consent_source: str = ""
    dry_run: bool = False
    strict: bool = False
    fallback_language: bool = False
    check_dns: bool = False
    batch_size: int = 2000
    progress: ProgressFn | None = None
    report: ImportReport = field(default_factory=ImportReport)
    _seen: set[int] = field(default_factory=set)

    def run(self, stream: IO[bytes], source: str) -> ImportReport:
        """Import every row of the stream."""
        self.report.dry_run, self.report.strict = self.dry_run, self.strict
        rows = read_records(stream)
        first = next((r for r in rows if r.problem or any(c.strip() for c in r.cells)), None)
        if first is None:
            raise ImportFileError("the file is empty")
        if first.problem:
            raise ImportFileError(f"line 1: the header cannot be read: {first.problem}")
        header = first.cells
        checker = RowChecker(self.lst, map_columns(header), self.fallback_language,
                             self.check_dns)
        single = self.dry_run or self.strict
        with self.engine.connect() as conn:
            transaction = conn.begin() if single else None
            for batch in self._batches(rows, checker):
                self._merge(conn, batch, source, commit=not single)
            if transaction is not None:
                keep = not self.dry_run and not self.report.rejected
                (transaction.commit if keep else transaction.rollback)()
                self.report.committed = keep
            else:
                self.report.committed = True
        return self.report

    def _batches(self, rows: Iterator[Record], checker: RowChecker):
        batch: dict[str, NewRow] = {}
        for record in rows:
            if not record.problem and not any(c.strip() for c in record.cells):
                continue
            self.report.rows += 1
            row, email, notes = (checker.check(record.line, record.cells) if not record.problem
                                 else (None, "", [record.problem]))
            if row is None:
                self.report.rejected.append(RowProblem(record.line, email, notes[0]))
            else:
                self.report.warnings.extend(RowProblem(record.line, email, n) for n in notes)
                self._add(batch, row)
            if self.progress and self.report.rows % 1000 == 0:
                self.progress(1000)
            if len(batch) >= self.batch_size:
                yield list(batch.values())
                batch = {}
        if batch:
            yield list(batch.values())

    def _add(self, batch: dict[str, NewRow], row: NewRow) -> None:
        key = hash(row.email)
        if key not in self._seen:
            self._seen.add(key)
            self.report.accepted += 1
            batch[row.email] = row
            return
        self.report.duplicates_in_file += 1
        earlier = batch.get(row.email)
        if earlier is None:  # first seen in an earlier batch: merge again, later values win
            batch[row.email] = row
            return
        earlier.name = row.name or earlier.name
        earlier.language = row.language or earlier.language
        earlier.attributes = {**earlier.attributes, **row.attributes}

    def _merge(self, conn: Connection, batch: list[NewRow], source: str, commit: bool) -> None:
        try:
            with self._savepoint(conn):
                counts = merge_batch(conn, self.lst, batch, address_key=self.address_key,
                                     confirmed=self.confirmed, source=source)
        except DBAPIError:
            # A row the checks let through but the database refuses: find it, keep the others.
            counts = self._merge_one_by_one(conn, batch, source)
        if commit:
            conn.commit()
        self.report.merge.add(counts)
        for line in counts.suppressed:
            row = next(r for r in batch if r.line == line)
            self.report.rejected.append(RowProblem(line, row.email, "address is suppressed"))
            self.report.accepted -= 1


    @staticmethod
    def _savepoint(conn: Connection) -> AbstractContextManager[Any]:
        # pysqlite cannot nest a savepoint in our open transaction (its RELEASE would commit a
        # dry run), and SQLite refuses none of the values the row checks let through.
        return nullcontext() if is_sqlite(conn.engine) else conn.begin_nested()

    def _merge_one_by_one(self, conn: Connection, batch: list[NewRow],
                          source: str) -> MergeCounts:
        counts = MergeCounts()
        for row in batch:
            try:
                with self._savepoint(conn):
                    counts.add(merge_batch(conn, self.lst, [row], address_key=self.address_key,
                                           confirmed=self.confirmed, source=source))
            except DBAPIError as exc:
                reason = str(exc.orig or exc).strip().splitlines()[0][:200]
                self.report.rejected.append(
                    RowProblem(row.line, row.email, f"the database refused this row: {reason}"))
                self.report.accepted -= 1
        return counts


def import_csv(
    engine: Engine,
    *,
    path: Path,
    list_slug: str,
    address_key: str,
    confirmed: bool = False,
    consent_source: str = "",
    dry_run: bool = False,
    strict: bool = False,
    fallback_language: bool = False,
    check_dns: bool = False,
    progress: ProgressFn | None = None,
) -> ImportReport:
    """Import a CSV file of subscribers into a list."""
    if confirmed and not consent_source.strip():
        raise ValidationError("--confirmed needs --consent-source saying where consent came from")
    lst = get_list(engine, list_slug)
    importer = Importer(engine, lst, address_key, confirmed=confirmed,
                        consent_source=consent_source, dry_run=dry_run, strict=strict,
                        fallback_language=fallback_language, check_dns=check_dns,
                        progress=progress)
    source = consent_source or f"import:{path.name}"
    try:
        with path.open("rb") as stream:
            return importer.run(stream, source)
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file") from None
