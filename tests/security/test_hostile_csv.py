"""Hostile CSV files: each bad row is rejected with its line and reason, every valid row lands.

The files in tests/data/hostile/csv/ hold what a CSV row can carry that one engine stores and the
other refuses, or that breaks a CSV reader: NUL bytes, fields over the csv module's limit,
invalid UTF-8 and encoded surrogates, control characters, quotes that never close, surplus
cells, huge cells. Valid rows are named okN@example.org. Every file runs through the CLI on
SQLite and PostgreSQL, as a plain import, a dry run and a strict one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli

HOSTILE = Path(__file__).parent.parent / "data" / "hostile" / "csv"


def oks(*numbers: int) -> set[str]:
    return {f"ok{n}@example.org" for n in numbers}


# file -> (addresses that land, {rejected line: words in its reason})
ROWS: dict[str, tuple[set[str], dict[int, str]]] = {
    "oversize_field.csv": (oks(*range(1, 41)), {32: "longer than 64 KB"}),
    "oversize_line_at_end_without_newline.csv": (oks(*range(1, 6)), {7: "longer than 64 KB"}),
    "unclosed_quote_at_end.csv": (oks(*range(1, 8)), {4: "never closed"}),
    "unclosed_quote_before_many_rows.csv": (oks(*range(1, 41)), {4: "more than 20 lines"}),
    "many_lines_quoted_name.csv": (
        oks(1, 2, 3), {3: "more than 20 lines", **{n: "invalid email" for n in range(4, 29)}}),
    "nul_bytes.csv": (oks(*range(1, 6)), {4: "email contains a NUL", 5: "name contains a NUL",
                                         8: "language contains a NUL"}),
    "nul_in_attribute.csv": (oks(1, 2), {3: "organisation contains a NUL"}),
    "invalid_utf8.csv": (oks(1, 2, 3, 4), dict.fromkeys((3, 5, 6, 7), "not UTF-8")),
    "lone_surrogate.csv": (oks(1, 2, 3), dict.fromkeys((3, 4), "not UTF-8")),
    "control_characters.csv": (oks(1, 2, 3), {3: "U+001B", 4: "U+0007", 5: "U+007F",
                                              6: "U+0085", 7: "U+000B"}),
    "too_many_columns.csv": (oks(1, 2) | {"trailing@example.org"},
                             {3: "4 cells but the header has 3", 5: "5 cells"}),
    "huge_attribute_cells.csv": (oks(1, 2), {3: "notes is longer than 1000",
                                             4: "email is longer", 5: "name is longer"}),
    "broken_quoting.csv": (oks(1, 2, 3), dict.fromkeys((3, 4), "after a closing quote")),
    "carriage_return_in_cell.csv": (oks(1, 2, 3), {3: "carriage return"}),
    "bom_crlf_semicolon.csv": (oks(1, 2, 4), {3: "invalid email", 7: "'de' is not offered"}),
    "formula_cells.csv": (oks(1, 2) | {"f4@example.org"}, dict.fromkeys((3, 4, 5), "formula")),
}

# file -> words of the one-line error; nothing is written
WHOLE_FILE = {
    "header_not_utf8.csv": "not UTF-8",
    "header_too_many_columns.csv": "151 columns",
    "header_only_oversize.csv": "longer than 64 KB",
}


def test_the_corpus_is_complete():
    assert {p.name for p in HOSTILE.glob("*.csv")} == set(ROWS) | set(WHOLE_FILE)


@pytest.fixture
def news(run: Cli) -> Cli:
    run("lists", "add", "news", "--name", "News", "--languages", "en,fr,es",
        "--default-language", "en")
    return run


def landed(run: Cli) -> set[str]:
    return {r["email"] for r in run.json("subscribers", "list", "--list", "news")}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_bad_rows_are_rejected_with_line_and_reason_and_valid_rows_land(news, name):
    path = str(HOSTILE / name)
    expected, bad = ROWS[name]
    dry = news("subscribers", "import", path, "--list", "news", "--dry-run")
    for line in bad:
        assert f"{path}:{line}: rejected" in dry.output
    assert "Traceback" not in dry.output
    strict = news("subscribers", "import", path, "--list", "news", "--strict", ok=False)
    assert strict.exit_code == 1 and "nothing was written" in strict.output
    assert landed(news) == set()

    report = news.json("subscribers", "import", path, "--list", "news")
    reasons = {e["line"]: e["reason"] for e in report["errors"]}
    assert set(reasons) == set(bad)
    for line, words in bad.items():
        assert words in reasons[line], (line, reasons[line])
    assert report["accepted"] == len(expected) and report["committed"]
    assert landed(news) == expected


@pytest.mark.parametrize("name", sorted(WHOLE_FILE))
def test_an_unreadable_header_is_one_line_and_writes_nothing(news, name):
    result = news("subscribers", "import", str(HOSTILE / name), "--list", "news", ok=False)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
    assert WHOLE_FILE[name] in result.output
    assert landed(news) == set()
