"""init, db upgrade and configuration errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.config import Secret, load_settings
from tests.conftest import write_config


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env or {}, catch_exceptions=False)


def test_init_creates_a_workspace_with_lists_and_a_secret(tmp_path: Path):
    target = tmp_path / "ws"
    result = invoke("init", str(target))
    assert result.exit_code == 0, result.output
    assert (target / "newsletter.toml").exists()
    assert (target / "newsletter.db").exists()
    assert (target / "statements" / "act-now" / "es.md").exists()
    settings = load_settings(target, environ={})
    assert len(settings.secret_key) >= 32
    listed = invoke("-w", str(target), "lists", "list", "--json")
    assert '"slug": "news"' in listed.output
    again = invoke("init", str(target))
    assert again.exit_code == 1 and "already has a newsletter.toml" in again.output


def test_commands_before_migration_say_to_run_db_upgrade(tmp_path: Path):
    ws = tmp_path / "fresh"
    write_config(ws, f"sqlite:///{tmp_path / 'empty.db'}")
    result = invoke("-w", str(ws), "lists", "list")
    assert result.exit_code == 1
    assert "newsletter db upgrade" in result.output
    assert invoke("-w", str(ws), "db", "upgrade").exit_code == 0
    assert invoke("-w", str(ws), "lists", "list").exit_code == 0


def test_bad_config_names_the_key_and_the_file(tmp_path: Path):
    ws = tmp_path / "ws"
    write_config(ws, "sqlite:///x.db", extra='[smtp]\nport = "abc"\n')
    result = invoke("-w", str(ws), "lists", "list")
    assert result.exit_code == 1
    assert "newsletter.toml: [smtp] port: expected an integer" in result.output
    write_config(ws, "sqlite:///x.db", extra="[smtp]\nprot = 25\n")
    assert "unknown key 'prot'" in invoke("-w", str(ws), "lists", "list").output


def test_environment_beats_file_and_flag_beats_environment(tmp_path: Path):
    ws = tmp_path / "ws"
    write_config(ws, "sqlite:///file.db", extra="[smtp]\nhost = \"file.example\"\n")
    env = {"NEWSLETTER_SMTP_HOST": "env.example", "NEWSLETTER_DATABASE_URL": "sqlite:///env.db"}
    settings = load_settings(ws, environ=env)
    assert settings["smtp"]["host"] == "env.example"
    assert settings.database_url.endswith("/ws/env.db")
    flagged = load_settings(ws, overrides={"database": {"url": "sqlite:///flag.db"}}, environ=env)
    assert flagged.database_url.endswith("/ws/flag.db")


def test_secrets_never_show_in_repr():
    settings = load_settings(".", environ={"NEWSLETTER_SMTP_PASSWORD": "hunter2",
                                           "NEWSLETTER_SECRET_KEY": "k3y"})
    assert "hunter2" not in repr(settings)
    assert "k3y" not in repr(settings)
    assert isinstance(settings["smtp"]["password"], Secret)


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "newsletter", "--help"], capture_output=True,
                         text=True, check=True)
    assert "subscribers" in out.stdout


