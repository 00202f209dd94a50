"""Hostile routine inputs: bad translated_from / copied_from records and hostile slugs.

Each file of tests/data/hostile/routine/ goes through `issue check`, `issue translated`,
`issue new --from` and `issue list` (no database): a one-line finding or error, no traceback,
and nothing outside the issue folder read or written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile" / "routine"
PLAIN_EN = ('+++\ntitle = "Coalition news"\nsubject = "Coalition news, November"\n'
            'preheader = "What happened this month in the coalition and beyond"\n+++\n\nHello.\n')
PLAIN_FR = ('+++\ntitle = "Nouvelles"\nsubject = "Les nouvelles de la coalition"\n'
            'preheader = "Ce qui s\'est passé ce mois-ci dans la coalition et ailleurs"\n+++\n\n'
            'Bonjour.\n')
PLAIN_TOML = 'list = "news"\ndate = 2026-11-20\n'
# name -> (exit code of `issue check`, text its output must contain)
VERDICTS: dict[str, tuple[int, str]] = {
    "translated-from-number.md": (1, "fr.md:5: error front-matter: translated_from: unexpected"),
    "translated-from-no-sections.md": (0, "warning stale-translation: translated_from must look"),
    "translated-from-traversal.md": (0, "the issue has no ../../etc/passwd.md to compare with"),
    "translated-from-huge.md": (0, "(and 19990 more)"),
    "translated-from-not-strings.md": (0, "translated_from must look like"),
    "translated-from-unquoted.md": (1, 'write translated_from = "en"'),
    "copied-from-traversal.issue.toml": (0, "0 error(s)"),
    "copied-from-wrong-type.issue.toml": (1, "copied_from: unexpected value 3"),
    "source-language-list.issue.toml": (1, "source_language: unexpected value ['en']"),
    "number-huge.issue.toml": (0, "0 error(s)"),
}


def test_the_corpus_is_every_file_of_the_folder() -> None:
    assert sorted(p.name for p in CORPUS.iterdir() if p.name != "README.md") == sorted(VERDICTS)


def _workspace(tmp_path: Path, name: str) -> Path:
    ws = tmp_path / "ws"
    folder = ws / "issues" / "hostile"
    folder.mkdir(parents=True)
    (ws / "newsletter.toml").write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "absent.db"}"\n', encoding="utf-8")
    is_toml = name.endswith(".issue.toml")
    shutil.copy(CORPUS / name, folder / ("issue.toml" if is_toml else "fr.md"))
    if is_toml:
        (folder / "fr.md").write_text(PLAIN_FR, encoding="utf-8")
    else:
        (folder / "issue.toml").write_text(PLAIN_TOML, encoding="utf-8")
    (folder / "en.md").write_text(PLAIN_EN, encoding="utf-8")
    return ws


def _run(ws: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["-w", str(ws), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_check_translated_copy_and_list_give_one_line_answers(tmp_path: Path, name: str) -> None:
    ws = _workspace(tmp_path, name)
    expected_exit, expected_text = VERDICTS[name]
    code, output = _run(ws, "issue", "check", "hostile")
    assert code == expected_exit and expected_text in output, output
    assert all(len(line) < 2000 for line in output.splitlines())
    code, output = _run(ws, "issue", "translated", "hostile", "--lang", "fr", "--source", "en")
    assert code in (0, 1) and len(output.splitlines()) == 1
    code, output = _run(ws, "issue", "new", "copy", "--from", "hostile")
    assert code == 0 and (ws / "issues" / "copy" / "en.md").exists()
    code, output = _run(ws, "issue", "list", "--json")
    assert code == 0 and {r["slug"] for r in json.loads(output)} == {"hostile", "copy"}
    assert sorted(p.name for p in ws.iterdir()) == ["issues", "newsletter.toml"]


@pytest.mark.parametrize("argv, says", [
    (["issue", "new", "copy", "--from", "../../etc"], "no issue folder issues/../../etc/"),
    (["issue", "new", "../escape", "--from", "hostile"], "invalid issue slug"),
    (["issue", "translated", "hostile", "--lang", "../en"], "has no ../en.md"),
    (["issue", "translated", "hostile", "--lang", "fr", "--source", "../../x"],
     "has no ../../x.md to translate from"),
    (["issue", "translated", "hostile", "--lang", "en", "--source", "en"], "source language"),
])
def test_hostile_names_are_refused_in_one_line(tmp_path: Path, argv: list[str], says: str) -> None:
    ws = _workspace(tmp_path, "copied-from-traversal.issue.toml")
    code, output = _run(ws, *argv)
    assert code == 1 and says in output and len(output.strip().splitlines()) == 1
    assert sorted(p.name for p in (ws / "issues").iterdir()) == ["hostile"]
