"""Hostile subscribers/lists.toml files: `lists sync` answers with one line and changes nothing.

Each file in tests/data/hostile/lists/ is what a hand-edited lists.toml can hold: wrong types,
invalid slugs and language codes, names with terminal escapes or header line breaks, a name far
over the column's size, bytes that are not UTF-8, a change that would drop a language that
subscribers read, a bad list after a good change. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import Cli

HOSTILE = Path(__file__).parent.parent / "data" / "hostile" / "lists"

# file -> words of the one-line error
FILES = {
    "name-integer.toml": "name must be a string",
    "languages-number.toml": "languages must be a list",
    "languages-numbers-in-list.toml": "list of codes",
    "languages-bad-code.toml": "not a language code",
    "languages-empty.toml": "at least one language",
    "default-not-offered.toml": "'de' is not among",
    "slug-not-a-slug.toml": "lowercase letters",
    "name-missing.toml": "missing name",
    "name-blank.toml": "needs a",
    "name-huge.toml": "at most 200 characters",
    "name-terminal-escape.toml": "control characters",
    "name-header-injection.toml": "control characters",
    "opt-in-unknown.toml": "opt_in must be",
    "public-not-boolean.toml": "public must be true or false",
    "list-not-a-table.toml": "[[list]] table",
    "not-utf8.toml": "not UTF-8",
    "invalid-toml.toml": "invalid TOML",
    "drops-a-language-subscribers-read.toml": "1 subscriber(s) read fr",
    "second-list-bad-after-good-change.toml": "'xx' is not among",
}


def test_the_corpus_is_complete():
    assert {p.name for p in HOSTILE.glob("*.toml")} == set(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_hostile_lists_toml_is_one_line_and_changes_nothing(run: Cli, workspace, name):
    run("lists", "add", "news", "--name", "Coalition News", "--languages", "en,fr,es")
    run("subscribers", "add", "amina@example.org", "--list", "news", "--language", "fr")
    before = run.json("lists", "list")
    shutil.copy(HOSTILE / name, workspace / "subscribers" / "lists.toml")
    for args in (("--dry-run",), ()):
        result = run("lists", "sync", *args, ok=False)
        assert result.exit_code == 1
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1, \
            result.output
        assert FILES[name] in result.output
        assert "\x1b" not in result.output
    assert run.json("lists", "list") == before
