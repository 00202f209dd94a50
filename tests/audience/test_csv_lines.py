"""Plain CSV lines are split without the csv module: the cells must be the ones it gives."""

from __future__ import annotations

import csv
import io

import pytest

from newsletter.audience.csvrecords import read_records

LINES = [
    "email,name,language,organisation",
    "amina@example.org,Amina Diallo,fr,Réseau Sahel",
    "  padded@example.org , Padded ,  en ,",
    'quoted@example.org,"Méndez, Carlos",es,"Red ""Sur"""',
    "trailing@example.org,,,,,",
    "",
    ",,,",
    'multi@example.org,"Li\r\nWei",en,Asia',
    "tab\tinside@example.org,x\u2028y,en,\u00a0",
    "last@example.org,Last,en,End",
]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_records_are_the_cells_the_csv_module_reads(delimiter, ending):
    text = ending.join(line.replace(",", delimiter) for line in LINES)
    data = ("\ufeff" + text).encode("utf-8")
    expected = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                               strict=True))
    records = list(read_records(io.BytesIO(data)))
    assert not any(r.problem for r in records)
    assert [r.cells for r in records] == expected
    lines = [r.line for r in records]
    assert lines == sorted(lines) and lines[-1] == len(LINES) + 1  # one cell spans two lines


class OneWay(io.BytesIO):
    """A stream that cannot seek, such as a pipe: read line by line."""

    def seekable(self) -> bool:
        return False


def test_a_big_file_reads_the_same_in_blocks_as_line_by_line():
    """Blocks of plain lines are split at once; every other line, wherever it falls in a
    block, gives the same cells, problems and line numbers as when read line by line."""
    odd = [b'q@example.org,"Diallo, Amina",fr,x', b"nul@example.org,a\0b,en,x",
           b"cr@example.org,a\rb,en,x", b"latin@example.org,M\xe9ndez,es,x",
           b'open@example.org,"never closed,en,x', b"", b",,,",
           b"long@example.org," + b"x" * (70 * 1024) + b",en,x",
           b'multi@example.org,"Li\nWei",en,x']
    lines = [b"email,name,language,org"]
    for i in range(6000):
        lines.append(odd[i // 97 % len(odd)] if i % 97 == 0 else
                     f"p{i}@example.org,Name {i},en,Org {i % 7}".encode())
    for ending in (b"\n", b"\r\n"):
        data = ending.join(lines) + b"\nend@example.org,End,en"  # no final line ending
        blocks = list(read_records(io.BytesIO(data)))
        assert blocks == list(read_records(OneWay(data)))
        assert len(blocks) > 5000 and blocks[-1].cells == ["end@example.org", "End", "en"]
        problems = [r.problem for r in blocks if r.problem]  # CR, Latin-1, quote, long: 7 each
        assert len(problems) == 28 and len(set(problems)) == 4
