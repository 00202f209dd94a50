"""Migration 0007 gives each pending request the time its confirmation mail was queued, filled
from the audit trail, so `subscribers invite` on an upgraded database asks nobody twice."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import Engine, text

from newsletter.db.engine import make_engine
from newsletter.db.migrate import alembic_config, upgrade
from tests.conftest import Cli, write_config
from tests.db.test_address_key_migration import empty_url  # noqa: F401 - the fixture
from tests.db.test_subscription_requests_migration import at_0004_with_pending_people

# Pending at 0006 besides those of at_0004_with_pending_people (form@ and twice@ subscribed on
# the form, added@ was imported and invited): never@ was imported and never asked; orphan@ was
# invited, and its request row went missing.
LATER = [("never@example.org", "import"), ("orphan@example.org", "invite")]


def at_0006_with_pending_people(engine: Engine) -> None:
    at_0004_with_pending_people(engine)
    upgrade(engine, "0006")
    with engine.begin() as conn:
        for email, kind in LATER:
            conn.execute(text(
                "INSERT INTO subscribers (email, name, language, attributes, created_at, "
                "updated_at) VALUES (:e, '', 'en', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                {"e": email})
            conn.execute(text(
                "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, "
                "updated_at) SELECT id, 1, 'pending', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP "
                "FROM subscribers WHERE email = :e"), {"e": email})
            conn.execute(text(
                "INSERT INTO events (kind, subscriber_id, list_id, created_at, source, data) "
                "SELECT :k, id, 1, CURRENT_TIMESTAMP, 'cli', '{}' FROM subscribers "
                "WHERE email = :e"), {"k": kind, "e": email})
        conn.execute(text(
            "INSERT INTO subscription_requests (subscriber_id, list_id, name, source, "
            "created_at) SELECT id, 1, '', 'import:late.csv', CURRENT_TIMESTAMP "
            "FROM subscribers WHERE email = 'never@example.org'"))


def _asked(engine: Engine) -> dict[str, bool]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT s.email, r.asked_at FROM subscription_requests r "
            "JOIN subscribers s ON s.id = r.subscriber_id ORDER BY s.email")).all()
    return {email: asked_at is not None for email, asked_at in rows}


def test_people_asked_before_the_upgrade_are_not_invited_again(
        empty_url, tmp_path: Path) -> None:  # noqa: F811
    write_config(tmp_path, empty_url)
    engine = make_engine(empty_url)
    at_0006_with_pending_people(engine)
    run = Cli(tmp_path)
    run("db", "upgrade")
    assert _asked(engine) == {
        "added@example.org": True,  # invited (an event only, before the upgrade)
        "form@example.org": True,
        "never@example.org": False,
        "orphan@example.org": True,  # invited: given its request back, as asked
        "twice@example.org": True,
    }
    assert run.json("subscribers", "invite", "--list", "news") == {"queued": 1, "throttled": 0}
    with engine.connect() as conn:
        mailed = conn.execute(text("SELECT recipient FROM outbox")).scalars().all()
    assert mailed == ["never@example.org"]
    assert all(_asked(engine).values())
    assert run.json("subscribers", "invite", "--list", "news") == {"queued": 0, "throttled": 0}
    command.downgrade(alembic_config(engine), "0006")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM subscription_requests")).scalar() == 5
    engine.dispose()
