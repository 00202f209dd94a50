"""[[smtp.relays]] and [smtp.domain_limits]: read typed, and each mistake is one line naming it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.config import load_settings
from newsletter.configschema import RelaySettings, Secret
from newsletter.delivery.relay import Relay, every_relay

TWO = """
[[smtp.relays]]
name = "own"
host = "mail.example.org"
port = 587
tls = "starttls"
user = "news"
password = "relay-password-5e1f"
connections = 8
rate = 50
hourly = 10000
weight = 3

[[smtp.relays]]
host = "smtp.provider.example"

[smtp.domain_limits]
"GMail.com" = 20
"""


def test_relays_are_read_typed_with_their_defaults(tmp_path):
    (tmp_path / "newsletter.toml").write_text(TWO, encoding="utf-8")
    settings = load_settings(tmp_path, environ={})
    own, provider = settings.smtp.relays
    assert own == RelaySettings("own", "mail.example.org", 587, "starttls", "news",
                                Secret("relay-password-5e1f"), 8, 50.0, 10000, 3.0)
    assert provider == RelaySettings(name="smtp.provider.example:25",
                                     host="smtp.provider.example")
    assert settings.smtp.domain_limits == {"gmail.com": 20.0}
    assert "relay-password-5e1f" not in repr(settings) + repr(every_relay(settings))
    # System mails and test copies use the first relay.
    assert Relay.from_settings(settings).describe() == "mail.example.org:587 (starttls)"


def test_without_relays_the_smtp_section_is_the_one_relay(tmp_path):
    (tmp_path / "newsletter.toml").write_text('[smtp]\nhost = "relay.example.org"\n', "utf-8")
    settings = load_settings(tmp_path, environ={})
    assert settings.smtp.relays == []
    assert [r.describe() for r in every_relay(settings)] == ["relay.example.org:8025 (none)"]


ENTRY = '[[smtp.relays]]\nname = "backup"\nhost = "h.example"\n'


@pytest.mark.parametrize("toml, says", [
    (ENTRY + 'hots = "x"\n', "[[smtp.relays]] #1 ('backup'): unknown key 'hots' (known: name,"),
    (ENTRY + 'port = "abc"\n', "[[smtp.relays]] #1 ('backup') port: expected an integer"),
    (ENTRY + "weight = 0\n", "[[smtp.relays]] #1 ('backup'): weight: must be more than 0"),
    (ENTRY + "weight = -2\n", "weight: must be more than 0, got -2.0"),
    (ENTRY + "connections = 0\n", "#1 ('backup'): connections: must be at least 1"),
    (ENTRY + 'tls = "ssl"\n', "#1 ('backup'): tls: expected one of none, starttls, tls"),
    (ENTRY + ENTRY, "[[smtp.relays]] #2 ('backup'): another relay has the name 'backup'"),
    ('[[smtp.relays]]\nport = 25\n', "[[smtp.relays]] #1: host: required"),
    ("[smtp]\nrelays = 3\n", "[[smtp.relays]]: expected a list of tables, got 3"),
    ("[smtp]\nrelays = [1]\n", "[[smtp.relays]] #1: expected a table, got 1"),
    ("[smtp]\ncooldown = -1\n", "[smtp] cooldown: must be 0 or more"),
    ('[smtp.domain_limits]\n"gmail.com" = 0\n', "[smtp.domain_limits] 'gmail.com': expected"),
    ('[smtp.domain_limits]\n"gmail.com" = "fast"\n', "[smtp.domain_limits] 'gmail.com': expected"),
    ('[smtp.domain_limits]\n"a@gmail.com" = 5\n', "expected a domain such as"),
])
def test_a_bad_relay_setting_is_one_line_and_exit_1(tmp_path, toml, says):
    (tmp_path / "newsletter.toml").write_text(toml, encoding="utf-8")
    result = CliRunner().invoke(cli, ["-w", str(tmp_path), "lists", "list"], env={})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {result.exception!r}")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1
    assert len(lines) == 1 and says in lines[0], result.output


def test_relays_cannot_come_from_the_environment(tmp_path):
    result = CliRunner().invoke(cli, ["-w", str(tmp_path), "lists", "list"],
                                env={"NEWSLETTER_SMTP_RELAYS": "a,b"})
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: NEWSLETTER_SMTP_RELAYS: [[smtp.relays]] entries "
                                     "can only be given in newsletter.toml")
