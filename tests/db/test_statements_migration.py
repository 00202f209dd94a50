"""Migration 0008 adds the statements and signatures tables and loses nothing of the rest:
a database at 0007 with subscribers and pending requests upgrades, keeps them, and takes a
signature."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import Engine, text

from newsletter.db.engine import make_engine
from newsletter.db.migrate import alembic_config, upgrade
from tests.conftest import Cli, write_config
from tests.db.test_address_key_migration import empty_url  # noqa: F401 - the fixture
from tests.db.test_request_asked_at_migration import at_0006_with_pending_people


def _people(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(
            "SELECT s.email, r.source FROM subscription_requests r "
            "JOIN subscribers s ON s.id = r.subscriber_id ORDER BY s.email")).all()]


def test_upgrade_to_0008_keeps_every_subscriber_and_takes_signatures(
        empty_url, tmp_path: Path) -> None:  # noqa: F811
    write_config(tmp_path, empty_url)
    engine = make_engine(empty_url)
    at_0006_with_pending_people(engine)
    upgrade(engine, "0007")
    before = _people(engine)
    assert len(before) == 5
    Cli(tmp_path)("db", "upgrade")
    assert _people(engine) == before
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO statements (slug, created_at) "
                          "VALUES ('act-now', CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO signatures (statement_id, organisation, organisation_key, country, "
            "organisation_type, contact_name, contact_email, language, listed, status, "
            "created_at) SELECT id, 'Red Cruz', 'red cruz', 'ES', 'ngo', 'Ana', "
            "'ana@example.org', 'es', :t, 'pending_verification', CURRENT_TIMESTAMP "
            "FROM statements"), {"t": True})
        assert conn.execute(text("SELECT count(*) FROM signatures")).scalar() == 1
    command.downgrade(alembic_config(engine), "0007")
    assert _people(engine) == before
    engine.dispose()
