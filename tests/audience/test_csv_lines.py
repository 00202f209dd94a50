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
