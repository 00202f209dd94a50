"""CSV records read one at a time, so that one bad record never stops the file.

Python's csv reader raises for the whole file on a field over its size limit, and a quote that
never closes swallows every line after it. Here each record is read from a bounded window of
physical lines: a record that is not UTF-8, is too long, spans too many lines or has broken
quoting comes back as a problem with its first line number, and reading starts again on the
line after that one, so the valid rows that follow are still read.

Most lines of a real file hold no quote: from a seekable file such lines are read a block at a
time, checked, decoded and split at once (plain_lines), and the plan pass counts their language
cells without making a record per row (Plain.cell_counts). Any other line is read on its own as
above, with the same result.
"""

from __future__ import annotations

import csv
from collections import Counter, deque
from collections.abc import Iterator
from itertools import repeat
from typing import IO, NamedTuple

MAX_RECORD_BYTES = 64 * 1024
MAX_RECORD_LINES = 20
BOM = b"\xef\xbb\xbf"


class RecordError(Exception):
    """One record cannot be read; the message says why, in the user's terms."""


class Record(NamedTuple):
    """Cells of one record and its first physical line; `problem` set when it is unreadable."""

    line: int
    cells: list[str]
    problem: str = ""


class _Lines:
    """Physical lines of a byte stream, decoded one by one, with push-back for resyncing."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.number = 0
        self.pending: deque[tuple[int, bytes]] = deque()
        self.record: list[tuple[int, bytes]] = []
        self.size = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        item = self.pending.popleft() if self.pending else self._read()
        self.record.append(item)
        raw = item[1]
        self.size += len(raw)
        if self.size > MAX_RECORD_BYTES or len(self.record) > MAX_RECORD_LINES:
            raise RecordError(self._too_long())
        try:
            return raw.decode()
        except UnicodeDecodeError as exc:
            raise RecordError(f"not UTF-8 text (byte {exc.start + 1} of the line); "
                              "save the file as CSV UTF-8") from None

    def _too_long(self) -> str:
        if self.size > MAX_RECORD_BYTES:
            return f"row is longer than {MAX_RECORD_BYTES // 1024} KB"
        return (f"a quoted cell runs over more than {MAX_RECORD_LINES} lines "
                "(is a closing quote missing?)")

    def _read(self) -> tuple[int, bytes]:
        raw = self.stream.readline(MAX_RECORD_BYTES + 1)
        if not raw:
            raise StopIteration
        if self.number == 0 and raw.startswith(BOM):
            raw = raw[len(BOM):]
        self.number += 1
        if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
            self._skip_rest_of_line()  # memory stays bounded whatever the line's length
        return self.number, raw

    def _skip_rest_of_line(self) -> None:
        while chunk := self.stream.readline(MAX_RECORD_BYTES):
            if chunk.endswith(b"\n"):
                return

    def resync(self) -> int:
        """Give back all but the first line of a bad record; returns that first line."""
        self.pending.extendleft(reversed(self.record[1:]))
        return self.record[0][0] if self.record else self.number


def _reason(exc: csv.Error) -> str:
    text = str(exc)
    if "expected after" in text:
        return "text after a closing quote (quote the whole cell and double any quote inside it)"
    if "unexpected end of data" in text:
        return "a quoted cell is never closed (missing closing quote)"
    if "new-line character" in text:
        return "a carriage return inside an unquoted cell"
    return f"unreadable CSV: {text}"


def sniff_delimiter(first_line: str) -> str:
    """';' or ',' (or tab), whichever the header uses most."""
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def plain_cells(raw: bytes, delimiter: str) -> list[str] | None:
    """The cells of a line the csv module would split on the delimiter alone, else None.

    Most lines hold no quote, NUL or carriage return (other than a CRLF ending): for those the
    csv module's answer is the line split on the delimiter, got here without its per-character
    state machine. Any other line (and one that is too long or not UTF-8) goes to the csv
    module, which also says what is wrong with it.
    """
    if len(raw) > MAX_RECORD_BYTES or b'"' in raw or b"\0" in raw:
        return None
    body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
    if b"\r" in body:
        return None
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    return text.split(delimiter) if text else []


def plain_lines(stream: IO[bytes]) -> list[str]:
    """The next physical lines of a seekable stream, decoded, up to the first one that is not
    plain (see plain_cells) or would be cut by the block read; the stream is left after them.

    A block of lines is checked, decoded and split at once: a million short lines cost a
    fraction of reading them one by one. The block is no longer than a record may be, so no
    line in it is too long; [] when the next line is not plain or is longer than a block.
    """
    start = stream.tell()
    block = stream.read(MAX_RECORD_BYTES)
    end = block.rfind(b"\n") + 1
    for bad in (b'"', b"\0"):
        at = block.find(bad, 0, end)
        if at >= 0:
            end = block.rfind(b"\n", 0, at) + 1
    if block.count(b"\r", 0, end) != block.count(b"\r\n", 0, end):
        at = block.index(b"\r")
        while block.startswith(b"\r\n", at):
            at = block.index(b"\r", at + 2)
        end = block.rfind(b"\n", 0, at) + 1
    try:
        text = block[:end].decode()
    except UnicodeDecodeError as exc:
        end = block.rfind(b"\n", 0, exc.start) + 1
        text = block[:end].decode()
    stream.seek(start + end)
    if not text:
        return []
    texts = text.replace("\r\n", "\n").split("\n")
    texts.pop()  # what follows the last line ending: nothing
    return texts


class Plain(NamedTuple):
    """A run of plain lines (see plain_lines), the first on line `first`: each one a record
    of the line split on the delimiter (an empty line: no cells)."""

    first: int
    texts: list[str]
    delimiter: str

    def records(self) -> list[Record]:
        d, texts = self.delimiter, self.texts
        # Record._make of ready tuples: measured quicker than Record(line, cells) per line.
        lines = range(self.first, self.first + len(texts))
        cells = [t.split(d) if t else [] for t in texts]
        return list(map(Record._make, zip(lines, cells, repeat(""))))

    def cell_counts(self, at: int | None) -> Counter[str]:
        """How many records of the run have each value in cell `at` ('' when a record is
        shorter or `at` is None), blank records (nothing but whitespace) left out."""
        d, texts = self.delimiter, self.texts
        if at is None:
            counts = Counter({"": len(texts)})
        else:
            pad = d * (at + 1)  # a record with fewer cells gets empty ones up to `at`
            counts = Counter((text + pad).split(d, at + 1)[at] for text in texts)
        spaces = [cell for cell in counts if not cell.strip()]
        if spaces:  # every blank record is among these: count it out
            empty = sum(counts.pop(cell) for cell in spaces)
            empty -= sum(1 for t in texts if not t.replace(d, "").strip())
            if empty:
                counts[""] = empty
        return counts


def read_records(stream: IO[bytes]) -> Iterator[Record]:
    """Every record in file order, the header first; the header's line picks the delimiter."""
    for item in read_runs(stream):
        if isinstance(item, Plain):
            yield from item.records()
        else:
            yield item


def read_runs(stream: IO[bytes]) -> Iterator[Record | Plain]:
    """read_records with its runs of plain lines given as such, for a reader that needs only
    some of their cells."""
    lines = _Lines(stream)
    try:
        first = lines._read()
    except StopIteration:
        return
    lines.pending.append(first)
    delimiter = sniff_delimiter(first[1].decode("utf-8", errors="replace"))
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    blocks = stream.seekable()
    while True:
        lines.record, lines.size = [], 0
        if blocks and not lines.pending:
            texts = plain_lines(stream)
            if texts:
                yield Plain(lines.number + 1, texts, delimiter)
                lines.number += len(texts)
                continue
        if not lines.pending:
            try:
                number, raw = lines._read()
            except StopIteration:
                return
            cells = plain_cells(raw, delimiter)
            if cells is not None:
                yield Record(number, cells)
                continue
            lines.pending.append((number, raw))
        try:
            cells = next(reader)
        except StopIteration:
            return
        except RecordError as exc:
            yield Record(lines.resync(), [], str(exc))
        except csv.Error as exc:
            yield Record(lines.resync(), [], _reason(exc))
        else:
            yield Record(lines.record[0][0], cells)
