"""Settings never show their secrets, and a bad database URL is one line, whichever way it came."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.config import SCHEMA, Secret, Text, load_settings
from newsletter.delivery.relay import Relay

SECRETS = {
    "NEWSLETTER_SECRET_KEY": "current-secret-4d2c",
    "NEWSLETTER_OLD_SECRET_KEYS": "retired-secret-91ab,older-secret-77ef",
    "NEWSLETTER_SMTP_PASSWORD": "relay-password-5e1f",
    "NEWSLETTER_DATABASE_URL": "postgresql://news:db-password-3c8a@db.example.org/news",
}
VALUES = ("current-secret-4d2c", "retired-secret-91ab", "older-secret-77ef",
          "relay-password-5e1f", "db-password-3c8a")


def test_repr_of_settings_and_relay_shows_no_secret(tmp_path):
    settings = load_settings(tmp_path, environ=SECRETS)
    shown = repr(settings) + repr(Relay.from_settings(settings))
    assert not [v for v in VALUES if v in shown]
    assert "db.example.org" in shown and "127.0.0.1" in shown  # the rest is still there


def test_old_secret_keys_still_verify_links(tmp_path):
    from newsletter.keyring import link_signer
    from newsletter.tokens import Signer

    token = Signer("retired-secret-91ab").sign("unsubscribe", 1, 2)
    signer = link_signer(load_settings(tmp_path, environ=SECRETS))
    assert signer.verify("unsubscribe", token).values == (1, 2)


@pytest.mark.parametrize("url, says", [
    ("postgresql://news:db-password-3c8a@127.0.0.1:notaport/news", "the port must be a number"),
    ("postgresql://news:db-password-3c8a@127.0.0.1:99999/news", "invalid port"),
    ("mongodb://news:db-password-3c8a@127.0.0.1/news", "cannot use database URL"),
    ("postgresql://news:db-password-3c8a@127.0.0.1:1/news", "cannot reach the database"),
    ("postgresql://news:db-password-3c8a@no-such-host.invalid/news", "cannot reach the database"),
    ("sqlite:///no/such/folder/news.db", "folder"),
])
def test_a_bad_database_url_flag_is_one_line_without_its_password(url, says, tmp_path):
    result = CliRunner().invoke(cli, ["-w", str(tmp_path), "--database-url", url, "lists", "list"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {result.exception!r}")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1
    assert len(lines) == 1 and says in lines[0], result.output
    assert "db-password-3c8a" not in result.output


def test_every_setting_reads_back_typed_with_the_value_loaded(tmp_path):
    (tmp_path / "newsletter.toml").write_text(
        '[smtp]\nport = "2526"\nrate = 12\n[web]\nconsent_text = { fr = "Oui" }\n'
        '[newsletter]\nname = { en = "News", fr = "Nouvelles" }\n', encoding="utf-8")
    settings = load_settings(tmp_path, environ={"NEWSLETTER_SMTP_HOST": "relay.example.org"})
    for section, keys in SCHEMA.items():
        typed = getattr(settings, section)
        for key in keys:
            assert getattr(typed, key) == settings[section][key], f"[{section}] {key}"
    assert (settings.smtp.port, settings.smtp.rate, settings.smtp.host) == (
        2526, 12.0, "relay.example.org")
    assert settings.newsletter.name == "News" and settings.web.consent_text == {"fr": "Oui"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.smtp.port = 25  # type: ignore[misc]
    assert settings.smtp is settings.smtp  # built once


def test_the_schema_has_each_sections_defaults_and_types():
    assert SCHEMA["smtp"]["port"] == (int, 8025)
    assert SCHEMA["newsletter"]["secret_key"][0] is Secret
    assert SCHEMA["newsletter"]["name"] == (Text, "Newsletter")
    assert SCHEMA["web"]["cors_origins"] == (list, ["*"])
    assert SCHEMA["web"]["welcome"] == (dict, {})
