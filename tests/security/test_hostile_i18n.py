"""Hostile per-language texts and date settings: one clear line, never a traceback.

tests/data/hostile/i18n/config-*.toml are newsletter.toml files; lists-*.toml are lists.toml
files. Each has one wrong per-language table or [languages] option, and a first line
`# expect: <words>` that the one-line error must contain.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.audience.listsync import read_list_definitions
from newsletter.cli.main import cli
from newsletter.config import ConfigError
from tests.conftest import drop_newsletter_env

CORPUS = Path(__file__).parent.parent / "data" / "hostile" / "i18n"
CONFIGS = sorted(p.name for p in CORPUS.glob("config-*.toml"))
LISTS = sorted(p.name for p in CORPUS.glob("lists-*.toml"))


def expected(name: str) -> str:
    first = (CORPUS / name).read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: ")
    return first.removeprefix("# expect: ")


def test_the_corpus_holds_its_inputs() -> None:
    assert len(CONFIGS) >= 10 and len(LISTS) >= 3


@pytest.mark.parametrize("name", CONFIGS)
def test_a_wrong_language_table_in_newsletter_toml_is_one_line(name: str, tmp_path: Path,
                                                                monkeypatch) -> None:
    drop_newsletter_env(monkeypatch)
    shutil.copy(CORPUS / name, tmp_path / "newsletter.toml")
    result = CliRunner().invoke(cli, ["-w", str(tmp_path), "lists", "list"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{name}: uncaught {result.exception!r}")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: newsletter.toml: ["), result.output
    assert expected(name) in lines[0]
    assert (CORPUS / name).read_bytes() == (tmp_path / "newsletter.toml").read_bytes()


@pytest.mark.parametrize("name", LISTS)
def test_a_wrong_language_table_in_lists_toml_is_one_line(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read_list_definitions(CORPUS / name)
    message = str(caught.value)
    assert "list #1" in message and "\n" not in message and len(message) < 300
    assert expected(name) in message
