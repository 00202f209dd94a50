"""docs/operations.md and docs/deploy/: every `newsletter` command they name exists with its flags.

Each command line in the guide's code blocks and inline code, the units' ExecStart= lines and
the container's entry point is resolved through the CLI (`newsletter X Y --help` must answer),
and each --option it uses must be one of that command's. A line naming a command of the
long-running worker, not merged yet, must say so: "(with newsletter worker)".
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.config import env_name
from newsletter.configschema import SCHEMA

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "operations.md"
DEPLOY = ROOT / "docs" / "deploy"
PENDING = "with `newsletter worker`"
ROOT_OPTIONS = {"-w", "--workspace", "--database-url", "--log-format"}


def _guide_lines() -> list[tuple[str, str]]:
    """(command text, the whole line) for each `newsletter ...` of the guide."""
    found: list[tuple[str, str]] = []
    in_shell = False
    for line in GUIDE.read_text("utf-8").splitlines():
        if line.startswith("```"):
            in_shell = line.strip() == "```sh"
            continue
        if in_shell and line.startswith("newsletter "):
            found.append((line, line))
        elif not in_shell:
            found += [(span, line) for span in re.findall(r"`(newsletter [^`]+)`", line)]
    return found


def _deploy_lines() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in sorted(DEPLOY.glob("*.service")):
        text = path.read_text("utf-8")
        marked = PENDING.replace("`", "") in text or PENDING in text
        for match in re.finditer(r"^ExecStart=(\S*/)?(newsletter .*)$", text, re.M):
            found.append((match[2], f"{path.name} {'(with newsletter worker)' if marked else ''}"))
    entry = (DEPLOY / "entrypoint.sh").read_text("utf-8")
    for match in re.finditer(r"^\s*(\w+)\)\s+exec (newsletter [^;]*);;", entry, re.M):
        role = match[1]
        note = "(with newsletter worker)" if role == "worker" else ""
        found.append((match[2].replace('"$@"', "").replace('"$role"', ""), f"entrypoint {note}"))
    return found


def _resolve(words: list[str]) -> tuple[list[str], click.Command | None, list[str]]:
    """The command path, the click command (None if a name is unknown), the options used."""
    ctx = click.Context(cli)
    command: click.Command = cli
    path: list[str] = []
    options: list[str] = []
    rest = iter(words[1:])
    for word in rest:
        if word.startswith("-"):
            option = word.split("=", 1)[0]
            options.append(option)
            if option in ROOT_OPTIONS and not path and "=" not in word:
                next(rest, None)
            continue
        if isinstance(command, click.Group):
            sub = command.get_command(ctx, word)
            if sub is None:
                return [*path, word], None, options
            command, path = sub, [*path, word]
    return path, command, options


def _all_lines() -> list[tuple[str, str]]:
    lines = _guide_lines() + _deploy_lines()
    assert len(lines) > 20, "the guide and the units name the commands"
    return lines


@pytest.mark.parametrize(("command", "line"), _all_lines(),
                         ids=lambda value: str(value)[:60])
def test_every_command_in_the_guide_exists_with_its_flags(command: str, line: str) -> None:
    words = shlex.split(command.split(" #")[0])
    path, found, options = _resolve(words)
    if found is None:
        assert "with newsletter worker" in line.replace("`", ""), (
            f"{command!r}: no command {' '.join(path)!r}, and the line does not say "
            f"'(with newsletter worker)'")
        return
    help_run = CliRunner().invoke(cli, [*path, "--help"])
    assert help_run.exit_code == 0, help_run.output
    known = {opt for param in found.params for opt in (*param.opts, *param.secondary_opts)}
    for option in options:
        if option in ROOT_OPTIONS and option not in known:
            continue
        if option not in known and "with newsletter worker" in line.replace("`", ""):
            continue
        assert option in known, f"{command!r}: `newsletter {' '.join(path)}` has no {option}"


def test_the_example_environment_sets_only_real_settings() -> None:
    names = {env_name(section, key) for section, keys in SCHEMA.items() for key in keys}
    names |= {"NEWSLETTER_LOG_FORMAT", "NEWSLETTER_WORKSPACE"}
    text = (DEPLOY / "newsletter.env.example").read_text("utf-8")
    used = re.findall(r"^#?\s*(NEWSLETTER_[A-Z_]+)=", text, re.M)
    assert used and set(used) <= names, sorted(set(used) - names)


def test_the_readme_links_the_guide() -> None:
    assert "(docs/operations.md)" in (ROOT / "README.md").read_text("utf-8")


@pytest.mark.parametrize(("role", "shown"), [
    ("web", "newsletter serve"), ("bounces", "newsletter bounces serve"),
    ("migrate", "newsletter db upgrade"), ("maintenance", "newsletter maintenance")])
def test_the_container_entry_point_starts_each_role(role: str, shown: str) -> None:
    """The image's entry point, run with the venv's `newsletter` first on PATH."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["sh", str(DEPLOY / "entrypoint.sh"), role, "--help"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Usage: {shown} [OPTIONS]")
