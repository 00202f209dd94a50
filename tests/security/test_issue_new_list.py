"""`issue new --list` cannot write anything but a list slug into issue.toml (trust item 9)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

SMUGGLERS = [
    'news"\nallow_raw_html = true\n#',
    'news"\r\nallow_raw_html = true\r\nx = "',
    "news\n",
    "news\\",
    "News",
    "news letter",
    "x" * 64,
    "",
]


@pytest.mark.parametrize("value", SMUGGLERS)
def test_a_list_value_that_is_not_a_slug_is_refused_in_one_line(
        run, workspace: Path, value: str) -> None:
    result = run("issue", "new", "2026-12-update", "--list", value, ok=False)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "invalid list slug" in lines[0], result.output
    assert "Traceback" not in result.output
    assert not (workspace / "issues" / "2026-12-update").exists()


def test_a_good_slug_is_written_as_a_toml_string_and_raw_html_stays_off(
        run, workspace: Path) -> None:
    run("issue", "new", "2026-12-update", "--list", "regional-news", "--lang", "en")
    data = tomllib.loads((workspace / "issues/2026-12-update/issue.toml").read_text("utf-8"))
    assert data["list"] == "regional-news" and "allow_raw_html" not in data


@pytest.mark.parametrize("value", ['a"b', "back\\slash", "line\nbreak\r\x00\x1f\x7f", "é😀"])
def test_toml_strings_read_back_as_written(value: str) -> None:
    from newsletter.compose.scaffold import toml_string

    assert tomllib.loads(f"x = {toml_string(value)}")["x"] == value


def test_lists_add_refuses_a_slug_with_a_trailing_newline(run) -> None:
    result = run("lists", "add", "news\n", "--name", "News", ok=False)
    assert result.exit_code == 1 and "list slug" in result.output
