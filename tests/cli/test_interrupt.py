"""Ctrl-C at a prompt of `python -m newsletter`: "Aborted!" and status 1, wherever it lands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from sqlalchemy.exc import OperationalError

from tests.compose.conftest import REPO
from tests.conftest import clean_env

# Loaded by Python at start-up from PYTHONPATH: the prompt gets the editor's Ctrl-C while
# Python runs code built from a string, as dataclasses, namedtuple and SQLAlchemy do.
CTRL_C_IN_GENERATED_CODE = """\
import click


def confirm(*_args, **_kwargs):
    exec("import os, signal\\nos.kill(os.getpid(), signal.SIGINT)\\nfor _ in range(3): pass")


click.confirm = confirm
"""


def _newsletter(workspace: Path, hook: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(PYTHONPATH=os.pathsep.join([str(hook), str(REPO)]))
    return subprocess.run([sys.executable, "-m", "newsletter", "-w", str(workspace), *args],
                          env=env, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120)


def test_a_ctrl_c_at_a_prompt_aborts_with_status_1_even_inside_generated_code(
        run, workspace: Path, tmp_path: Path) -> None:
    run("lists", "add", "news", "--name", "News")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CTRL_C_IN_GENERATED_CODE)
    done = _newsletter(workspace, hook, "lists", "delete", "news")
    # It used to die of SIGINT (-2) after printing "Aborted!", so a script saw a kill.
    assert done.returncode == 1, done.stderr
    assert "Aborted!" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "news" in run("lists", "list").output  # nothing deleted


def test_an_error_raised_while_a_ctrl_c_unwinds_reads_as_the_ctrl_c(
        run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen once in a Ctrl-C test: psycopg, stopped mid-query, failed to reset its connection,
    and the editor read "database error: can't change 'autocommit' now" instead of Aborted!."""
    run("lists", "add", "news", "--name", "News")

    def confirm(*_args: object, **_kwargs: object) -> bool:
        try:
            raise KeyboardInterrupt
        finally:
            raise OperationalError("SELECT 1", {}, Exception(
                "can't change 'autocommit' now: connection in transaction status ACTIVE"))

    monkeypatch.setattr(click, "confirm", confirm)
    result = run("lists", "delete", "news", ok=False)
    assert result.exit_code == 1, result.output
    assert "Aborted!" in result.output and "database error" not in result.output
    assert "news" in run("lists", "list").output


def test_a_database_error_with_no_ctrl_c_behind_it_is_still_reported(
        run, monkeypatch: pytest.MonkeyPatch) -> None:
    run("lists", "add", "news", "--name", "News")

    def confirm(*_args: object, **_kwargs: object) -> bool:
        try:
            raise ValueError("a bad value")
        except ValueError as exc:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection")) \
                from exc

    monkeypatch.setattr(click, "confirm", confirm)
    result = run("lists", "delete", "news", ok=False)
    assert result.exit_code == 1, result.output
    assert "database error: server closed the connection" in result.output
    assert "Aborted!" not in result.output
