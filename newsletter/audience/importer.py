"""CSV import: stream rows, validate each, merge valid ones in batches, report every reject.

Memory stays bounded whatever the file size: rows are read, checked and written a batch at a
time; the only thing kept for the whole file is a set of 64-bit hashes of the addresses seen,
so a duplicate later in the file is reported as merged.

A record the CSV reader cannot read (not UTF-8, over 64 KB, a quote never closed) is rejected
with its line, and every other row goes through the per-row rules of audience/importrows.py;
the rows around a rejected one still land. A row the database refuses anyway is found by
merging its batch one row at a time, and rejected alone. audience/importreport.py holds what is
reported.

Before anything is written the file is read once more, cheaply, to plan: the column mapping
(newsletter.audience.columns) and the rows per language are handed to `on_plan`, and a file
without a language column for a list of several languages is refused under `strict`.

Transactions: by default each batch commits, so valid rows land even when others are bad.
With `strict` (or `dry_run`) everything runs in one transaction that is rolled back when any row
is rejected (or always, for a dry run), so the counts are exact and nothing lands.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from newsletter.audience.columns import Columns, ImportFileError, map_columns
from newsletter.audience.csvrecords import Plain, Record, read_records, read_runs
from newsletter.audience.importreport import ImportPlan, ImportReport, RowProblem
from newsletter.audience.importrows import RowChecker, blank
from newsletter.audience.lists import ListInfo, get_list
from newsletter.audience.subscribers import Known, MergeCounts, NewRow, merge_batch
from newsletter.db.bulk import Bulk, KnownRow
from newsletter.db.engine import is_sqlite
from newsletter.errors import ValidationError
from newsletter.keyring import address_hash

ProgressFn = Callable[[int], None]
# checker.check's answer for a record (None: a blank record).
Checked = tuple[NewRow | None, str, list[str]] | None


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
    named_columns: dict[str, str] = field(default_factory=dict)
    on_plan: Callable[[ImportPlan], None] | None = None
    report: ImportReport = field(default_factory=ImportReport)
    _seen: set[int] = field(default_factory=set)

    def run(self, stream: IO[bytes], source: str) -> ImportReport:
        """Read the file once to plan (nothing written), then import every row of it."""
        with few_collections():
            return self._run(stream, source)

    def _run(self, stream: IO[bytes], source: str) -> ImportReport:
        self.report.dry_run, self.report.strict = self.dry_run, self.strict
        columns = self._columns(stream)
        checker = RowChecker(self.lst, columns, self.fallback_language, self.check_dns)
        stream.seek(0)
        plan = self.report.plan = self._plan(read_runs(stream), checker)
        if self.on_plan:
            self.on_plan(plan)
        if self.strict and plan.defaulted:
            raise ImportFileError(f"--strict: no language column, so all {plan.rows} rows would "
                                  f"get the default language {plan.default_language!r}; name "
                                  "the column with --column language=HEADER")
        stream.seek(0)
        rows = read_records(stream)
        next(r for r in rows if r.problem or not blank(r.cells))  # the header
        single = self.dry_run or self.strict
        with self.engine.connect() as conn:
            transaction = conn.begin() if single else None
            for batch, known in self._batches(conn, rows, checker):
                self._merge(conn, batch, known, source, commit=not single)
            if transaction is not None:
                keep = not self.dry_run and not self.report.rejected
                (transaction.commit if keep else transaction.rollback)()
                self.report.committed = keep
            else:
                self.report.committed = True
        return self.report

    def _columns(self, stream: IO[bytes]) -> Columns:
        first = next((r for r in read_records(stream)
                      if r.problem or not blank(r.cells)), None)
        if first is None:
            raise ImportFileError("the file is empty")
        if first.problem:
            raise ImportFileError(f"line 1: the header cannot be read: {first.problem}")
        return map_columns(first.cells, self.named_columns)

    def _plan(self, runs: Iterator[Record | Plain], checker: RowChecker) -> ImportPlan:
        """Rows per language in the file (only the language cell is checked: it is cheap)."""
        columns = checker.columns
        plan = ImportPlan(columns.describe(), default_language=self.lst.default_language,
                          list_languages=tuple(self.lst.languages))
        plan.rows, cells = language_cells(runs, columns.language)
        for cell, n in cells.items():
            plan.rows += n
            language = checker.language(cell.strip())[0]
            if language:
                plan.languages[language] = plan.languages.get(language, 0) + n
            else:
                plan.unknown_language += n
        plan.languages = dict(sorted(plan.languages.items(), key=lambda kv: (-kv[1], kv[0])))
        return plan

    def _batches(self, conn: Connection, rows: Iterator[Record],
                 checker: RowChecker) -> Iterator[tuple[list[NewRow], Known]]:
        """The rows to merge, by address, a batch of records at a time, each batch with its
        known subscribers (read before its rows are checked, after the batch before is merged).

        A record that would change nothing on a subscriber already on the list goes no
        further than RowChecker.unchanged: it is counted, not merged.
        """
        while records := list(islice(rows, self.batch_size)):
            keys = checker.addresses(records)
            addresses = [key for key in keys if key]
            db = Bulk(conn)
            found = db.subscribers(self.lst.id, addresses)
            same = self._same(records, keys, checker, self._settled(db, found)) if found else {}
            batch: dict[str, NewRow] = {}
            if not same:  # a first import: every record is checked, one plain loop
                self._check_all(records, checker, found, batch)
                yield list(batch.values()), {**dict.fromkeys(addresses), **found}
                continue
            # The others checked first, to find the addresses that are on several records.
            checked = {i: self._checked(r, checker, found)
                       for i, r in enumerate(records) if i not in same}
            for i in self._not_alone(same, keys, checked):
                del same[i]
            for i, record in enumerate(records):
                if i not in same:
                    self._take(record, checked[i] if i in checked else
                               self._checked(record, checker, found), batch)
            self._count_same(list(same.values()))
            yield list(batch.values()), {**dict.fromkeys(addresses), **found}

    def _check_all(self, records: list[Record], checker: RowChecker,
                   found: dict[str, KnownRow], batch: dict[str, NewRow]) -> None:
        """Check every record of a batch and add the accepted rows to `batch`: what
        _checked and _take do, inline, as a first import runs it a million times."""
        report, check, progress, seen = self.report, checker.check, self.progress, self._seen
        rejected, warnings, languages = report.rejected, report.warnings, report.languages
        for line, cells, problem in records:
            if problem:
                rejected.append(RowProblem(line, "", problem))
            elif not "".join(cells).strip():  # a blank record (see blank)
                continue
            else:
                row, email, notes = check(line, cells, found)
                if row is None:
                    rejected.append(RowProblem(line, email, notes[0]))
                else:
                    if notes:
                        warnings.extend(RowProblem(line, email, n) for n in notes)
                    key = hash(email)
                    if key in seen:
                        self._add(batch, row)  # a duplicate: _add says what to keep
                    else:  # _add's first case
                        seen.add(key)
                        report.accepted += 1
                        languages[row.language] = languages.get(row.language, 0) + 1
                        batch[email] = row
            report.rows += 1
            if progress and report.rows % 1000 == 0:
                progress(1000)

    def _settled(self, db: Bulk, found: dict[str, KnownRow]) -> dict[str, KnownRow]:
        """The known subscribers a merge would leave as they are on the list, unless a row
        changes them: on it already, nothing to confirm, and not suppressed."""
        settled = {email: row for email, row in found.items()
                   if row[5] is not None and not (self.confirmed and row[5] == "pending")}
        if settled and db.any_suppressed():
            hashes = {address_hash(email, self.address_key): email for email in settled}
            for blocked in db.suppressed(list(hashes)):
                del settled[hashes[blocked]]
        return settled

    @staticmethod
    def _same(records: list[Record], keys: list[str | None], checker: RowChecker,
              settled: dict[str, KnownRow]) -> dict[int, tuple[str, KnownRow]]:
        """Record index -> (language, stored row) for the records that would change nothing
        on a settled subscriber, found by their address cell as written."""
        same: dict[int, tuple[str, KnownRow]] = {}
        for i, key in enumerate(keys if settled else ()):
            stored = settled.get(key) if key else None
            if stored is not None and (language := checker.unchanged(records[i].cells, stored)):
                same[i] = language, stored
        return same

    def _not_alone(self, same: dict[int, tuple[str, KnownRow]], keys: list[str | None],
                   checked: dict[int, Checked]) -> list[int]:
        """The unchanged records whose address is also on another record of the file so far
        (any spelling of it): those are merged as before, later values winning."""
        addresses = [keys[i] for i in same]
        twice = ({a for a, n in Counter(addresses).items() if n > 1}
                 if len(set(addresses)) < len(addresses) else set())
        others = twice | {result[0].email for result in checked.values() if result and result[0]}
        return [i for i in same if keys[i] in others or hash(keys[i]) in self._seen]

    def _count_same(self, same: list[tuple[str, KnownRow]]) -> None:
        """Count the records that change nothing (see _batches) as the merge would have."""
        self._seen.update(hash(stored[0]) for _, stored in same)
        self.report.accepted += len(same)
        for language, n in Counter(language for language, _ in same).items():
            self._count_language(language, n)
        self.report.merge.unchanged += len(same)
        self.report.merge.kept_unsubscribed += sum(s[5] == "unsubscribed" for _, s in same)
        self._count_rows(len(same))

    @staticmethod
    def _checked(record: Record, checker: RowChecker, found: dict[str, KnownRow]) -> Checked:
        """checker.check's answer for a record, or None for a blank one."""
        if record.problem:
            return None, "", [record.problem]
        if blank(record.cells):
            return None
        return checker.check(record.line, record.cells, found)

    def _take(self, record: Record, checked: Checked, batch: dict[str, NewRow]) -> None:
        if checked is None:
            return
        row, email, notes = checked
        if row is None:
            self.report.rejected.append(RowProblem(record.line, email, notes[0]))
        else:
            if notes:
                self.report.warnings.extend(RowProblem(record.line, email, n) for n in notes)
            self._add(batch, row)
        self.report.rows += 1
        if self.progress and self.report.rows % 1000 == 0:
            self.progress(1000)

    def _count_rows(self, n: int) -> None:
        before, self.report.rows = self.report.rows, self.report.rows + n
        if self.progress:
            for _ in range(self.report.rows // 1000 - before // 1000):
                self.progress(1000)

    def _add(self, batch: dict[str, NewRow], row: NewRow) -> None:
        key = hash(row.email)
        if key not in self._seen:
            self._seen.add(key)
            self.report.accepted += 1
            languages = self.report.languages
            languages[row.language] = languages.get(row.language, 0) + 1
            batch[row.email] = row
            return
        self.report.duplicates_in_file += 1
        earlier = batch.get(row.email)
        if earlier is None:  # first seen in an earlier batch: merge again, later values win
            batch[row.email] = row
            return
        earlier.name = row.name or earlier.name
        if not row.default_language and row.language != earlier.language:
            self._count_language(earlier.language, -1)
            self._count_language(row.language, 1)
            earlier.language, earlier.default_language = row.language, False
        earlier.attributes = {**earlier.attributes, **row.attributes}

    def _merge(self, conn: Connection, batch: list[NewRow], known: Known, source: str,
               commit: bool) -> None:
        try:
            with self._savepoint(conn):
                counts = merge_batch(conn, self.lst, batch, address_key=self.address_key,
                                     confirmed=self.confirmed, source=source, known=known)
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
            self._count_language(row.language, -1)

    def _count_language(self, language: str, n: int) -> None:
        counts = self.report.languages
        counts[language] = counts.get(language, 0) + n
        if not counts[language]:
            del counts[language]


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
                self._count_language(row.language, -1)
        return counts


def language_cells(runs: Iterator[Record | Plain], at: int | None) -> tuple[int, Counter[str]]:
    """(unreadable records, how many rows have each language cell as written) after the
    header, blank rows left out."""
    problems, cells = 0, Counter[str]()
    header = False
    for item in runs:
        if header and isinstance(item, Plain):
            cells.update(item.cell_counts(at))
            continue
        for record in item.records() if isinstance(item, Plain) else [item]:
            if not record.problem and blank(record.cells):
                continue
            if not header:
                header = True
            elif record.problem:
                problems += 1
            else:
                found = record.cells
                cells[found[at] if at is not None and at < len(found) else ""] += 1
    return problems, cells


@contextmanager
def few_collections() -> Iterator[None]:
    """Python's cycle collector, set for a run that makes millions of short-lived objects.

    By default it runs every 700 new objects and its full passes walk every object the process
    holds (SQLAlchemy's and the other modules' too): a tenth of a re-import's CPU time. Inside,
    the objects made before are frozen out of its passes, and it runs every 20,000 new objects
    (a batch's rows are a few tens of thousands). Both are put back afterwards.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


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
    columns: dict[str, str] | None = None,
    on_plan: Callable[[ImportPlan], None] | None = None,
) -> ImportReport:
    """Import a CSV file of subscribers into a list."""
    if confirmed and not consent_source.strip():
        raise ValidationError("--confirmed needs --consent-source saying where consent came from")
    lst = get_list(engine, list_slug)
    importer = Importer(engine, lst, address_key, confirmed=confirmed,
                        consent_source=consent_source, dry_run=dry_run, strict=strict,
                        fallback_language=fallback_language, check_dns=check_dns,
                        progress=progress, named_columns=columns or {}, on_plan=on_plan)
    source = consent_source or f"import:{path.name}"
    try:
        with path.open("rb") as stream:
            return importer.run(stream, source)
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file") from None
