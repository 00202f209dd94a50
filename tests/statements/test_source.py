"""A statement's source: rendered like an issue, and `statement check` names each problem in
one line (a missing translation, bad front matter)."""

from __future__ import annotations

import shutil
from pathlib import Path

from newsletter.cli.init import SKELETON
from newsletter.statements.source import load_statement
from tests.conftest import Cli
from tests.statements.sample import write_statement


def test_a_sound_statement_renders_its_markdown_and_checks_ok(workspace: Path) -> None:
    write_statement(workspace, extra="cap = 100\n")
    found = load_statement(workspace, "new-deal")
    assert found.cap == 100
    assert "<strong" in found.text("es").html and "firmantes" in found.text("es").html
    result = Cli(workspace)("statement", "check", "new-deal")
    assert "ok" in result.output


def test_check_names_a_missing_translation_and_bad_front_matter(workspace: Path) -> None:
    folder = write_statement(workspace, languages=("en", "es"))
    (folder / "es.md").write_text('+++\ntitle = "x"\nopens = "soon"\n+++\nTexto\n')
    result = Cli(workspace)("statement", "check", "new-deal", ok=False)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "statements/new-deal/fr.md: missing translation" in lines
    assert any(line.startswith("statements/new-deal/es.md: opens: expected a date")
               for line in lines)
    assert "Traceback" not in result.output


def test_check_of_an_unknown_statement_is_one_line(workspace: Path) -> None:
    result = Cli(workspace)("statement", "check", "nothing-here", ok=False)
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: no statement 'nothing-here': statements/nothing-here/ does not exist")


def test_the_example_statement_checks_ok_in_every_language(workspace: Path) -> None:
    shutil.copytree(SKELETON / "statements", workspace / "statements")
    result = Cli(workspace)("statement", "check", "act-now")
    assert result.output.strip() == "statement 'act-now': ok"
    found = load_statement(workspace, "act-now")
    assert set(found.texts) == {"en", "fr", "es"}
    assert "Agir maintenant" in found.text("fr").title
    assert "<ol" in found.text("es").html and "firmantes" in found.text("es").html
