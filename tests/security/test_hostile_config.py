"""Hostile newsletter.toml files and NEWSLETTER_* environments: one clear line, no secret shown.

Each file in tests/data/hostile/config/ is a newsletter.toml (*.toml) or a set of environment
variables (*.env). Secrets in them are the canary below; no error may quote it back, and none
may end in a traceback.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from tests.conftest import drop_newsletter_env

CORPUS = Path(__file__).parent.parent / "data" / "hostile" / "config"
CANARIES = ("CANARY-SECRET-7f3a", "918273645")
CASES = sorted(p.name for p in CORPUS.iterdir() if p.suffix in (".toml", ".env"))


def test_the_corpus_holds_at_least_ten_inputs():
    assert len(CASES) >= 10


def environment(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@pytest.mark.parametrize("name", CASES)
def test_hostile_config_gets_one_line_and_never_its_secrets(name, tmp_path, monkeypatch):
    drop_newsletter_env(monkeypatch)
    source = CORPUS / name
    env = {}
    if source.suffix == ".toml":
        shutil.copy(source, tmp_path / "newsletter.toml")
    else:
        env = environment(source)
    result = CliRunner().invoke(cli, ["-w", str(tmp_path), "lists", "list"], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{name}: uncaught {result.exception!r}")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert len(lines[0]) < 300, lines[0]
    assert not any(canary in result.output for canary in CANARIES), lines[0]
