"""The root command's table: every listed command loads, and start-up imports nothing heavy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from newsletter import __version__
from newsletter.cli.main import COMMANDS, cli, load_command
from tests.compose.conftest import EXAMPLE, REPO
from tests.conftest import Cli, clean_env

# Libraries that `newsletter --version` and `--help` must not import: each costs tens to
# hundreds of milliseconds, and neither needs them.
HEAVY = ("sqlalchemy", "jinja2", "mjml", "markdown_it", "aiosmtplib", "aiosmtpd", "starlette",
         "rich", "babel", "psycopg", "dns", "dkim", "feedgen", "PIL")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_listed_command_imports_and_its_listed_help_is_its_own(name: str) -> None:
    command = load_command(name)
    assert command.name == name
    listed = click.Command(name, help=COMMANDS[name].help)
    for limit in (20, 45, 60, 200):  # `newsletter --help` at any terminal width
        assert listed.get_short_help_str(limit) == command.get_short_help_str(limit), limit


def _walk(group: click.Group, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"{' '.join([*path, name])} is listed but does not load"
        yield [*path, name], command
        if isinstance(command, click.Group):
            yield from _walk(command, [*path, name])


def test_every_command_and_subcommand_has_a_working_help() -> None:
    paths = []
    for path, command in _walk(cli, []):
        result = CliRunner().invoke(cli, [*path, "--help"], catch_exceptions=False)
        assert result.exit_code == 0, path
        assert command.help or command.short_help, f"{' '.join(path)} has no help text"
        assert f"Usage: cli {' '.join(path)}" in result.output
        paths.append(" ".join(path))
    assert "issue status" in paths and "archive build" in paths and "send" in paths


def _imported(*args: str) -> tuple[str, set[str]]:
    """Run `python -m newsletter ARGS` and return its output and every module it imported."""
    env = clean_env()
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "newsletter", *args],
                          capture_output=True, text=True, check=True, env=env)
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    return done.stdout, modules


@pytest.mark.parametrize("args", [["--version"], ["--help"]], ids=["version", "help"])
def test_version_and_help_import_no_heavy_library_and_no_command(args: list[str]) -> None:
    output, modules = _imported(*args)
    assert "newsletter" in output
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == [], f"`newsletter {args[0]}` imported {heavy[:5]}"
    commands = sorted(m for m in modules if m.startswith("newsletter.cli.")
                      and m != "newsletter.cli.main")
    assert commands == [], f"`newsletter {args[0]}` imported {commands}"


def test_help_lists_every_command_with_its_summary() -> None:
    output, _ = _imported("--help")
    for name in COMMANDS:
        assert f"\n  {name} " in output, name
    assert "Build and preview the public web archive of sent issues." in output


def test_an_archive_build_with_nothing_to_write_imports_no_feed_or_catalog_reader(
        workspace: Path) -> None:
    first, _ = _imported("-w", str(workspace), "archive", "build")
    assert "written" in first
    again, modules = _imported("-w", str(workspace), "archive", "build")
    assert "0 written" in again and "0 removed" in again
    needless = sorted(m for m in modules if m.split(".")[0] in ("feedgen", "lxml", "dateutil")
                      or m.startswith("babel.messages"))
    assert needless == []


@pytest.mark.sqlite_only
def test_a_database_error_is_one_line(run: Cli, db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE lists"))
    engine.dispose()
    result = run("lists", "list", ok=False)
    assert result.exit_code == 1
    assert result.output == "Error: database error: no such table: lists\n"


def test_python_dash_m_and_the_console_script_agree(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("newsletter")
    via_script = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                                check=True, cwd=tmp_path)
    via_module, _ = _imported("--version")
    assert via_script.stdout == via_module == f"newsletter, version {__version__}\n"


@pytest.mark.sqlite_only
def test_checking_an_issue_without_a_statement_imports_no_signing_code(workspace: Path) -> None:
    """The statements' database code brings e-mail validation, opt-in and the outbox: every
    compile (`issue check`, `send`) paid for them, ~10 % of a small send."""
    shutil.copytree(REPO / "issues" / EXAMPLE, workspace / "issues" / EXAMPLE)
    output, modules = _imported("-w", str(workspace), "issue", "check", EXAMPLE)
    assert EXAMPLE in output
    signing = sorted(m for m in modules if m.split(".")[0] == "email_validator"
                     or m in ("newsletter.statements.signatures", "newsletter.outbox"))
    assert signing == []
