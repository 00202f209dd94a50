"""Migration 0003 gives the database an address key without losing a single suppression."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from newsletter.cli.main import cli
from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.migrate import needs_upgrade, upgrade
from newsletter.keyring import KeyringError, load_keyring
from tests.conftest import BACKENDS, pg_database, write_config

OLD_KEY = "the-key-of-2025-0123456789"
BOUNCED = ["Gone@Example.org", "full@example.net"]


def old_hash(email: str, key: str) -> str:
    """The suppression hash as revision 0002 wrote it: HMAC of the address with the secret key."""
    return hmac.new(key.encode(), email.lower().encode(), hashlib.sha256).hexdigest()


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own with no schema at all (to migrate step by step)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with pg_database("nl_mig") as url:
        yield url


def at_0002_with_suppressions(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine, "0002")
    with engine.begin() as conn:
        for email in BOUNCED:
            conn.execute(text(
                "INSERT INTO suppressions (email_hash, reason, detail, created_at) "
                "VALUES (:h, 'bounce', '5.1.1', CURRENT_TIMESTAMP)"),
                {"h": old_hash(email, OLD_KEY)})
    engine.dispose()


def test_suppressions_made_before_the_upgrade_still_match_after_a_rotation(empty_url, tmp_path):
    at_0002_with_suppressions(empty_url)
    write_config(tmp_path, empty_url)
    (tmp_path / "newsletter.toml").write_text(
        (tmp_path / "newsletter.toml").read_text().replace(
            'secret_key = "test-secret-key-0123456789"', f'secret_key = "{OLD_KEY}"'))
    result = CliRunner().invoke(cli, ["-w", str(tmp_path), "db", "upgrade"])
    assert result.exit_code == 0, result.output

    rotated = load_settings(tmp_path, environ={}, overrides={"newsletter": {
        "secret_key": "a-brand-new-key-0000000000", "old_secret_keys": [OLD_KEY]}})
    engine = make_engine(empty_url)
    keys = load_keyring(rotated, engine)
    with engine.connect() as conn:
        stored = set(conn.execute(text("SELECT email_hash FROM suppressions")).scalars())
        count = conn.execute(text("SELECT count(*) FROM suppressions")).scalar()
    engine.dispose()
    assert count == len(BOUNCED)
    assert {keys.hash_address(e) for e in BOUNCED} == stored
    assert keys.hash_address("GONE@example.org") in stored


def test_upgrade_without_the_secret_key_refuses_and_changes_nothing(empty_url):
    at_0002_with_suppressions(empty_url)
    engine = make_engine(empty_url)
    with pytest.raises(KeyringError) as refused:
        upgrade(engine)
    assert "secret key" in str(refused.value) and "\n" not in str(refused.value)
    assert needs_upgrade(engine)
    upgrade(engine, secret_key=OLD_KEY)  # the operator sets the key and runs it again
    assert not needs_upgrade(engine)
    engine.dispose()


def test_a_database_without_suppressions_gets_a_random_address_key(empty_url):
    engine = make_engine(empty_url)
    upgrade(engine, secret_key=OLD_KEY)
    with engine.connect() as conn:
        key = conn.execute(text("SELECT value FROM keyring WHERE name = 'address_key'")).scalar()
    engine.dispose()
    assert key and key != OLD_KEY and len(bytes.fromhex(key)) == 32
