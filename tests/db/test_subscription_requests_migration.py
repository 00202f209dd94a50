"""Migration 0005 moves what pending subscriptions asked for out of the audit trail into
`subscription_requests`, so a confirmation link mailed before the upgrade confirms as before."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from click.testing import CliRunner
from sqlalchemy import Engine, text

from newsletter.audience.audit import RequestMeta
from newsletter.audience.optin import OptIn, confirm
from newsletter.cli.main import cli
from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.migrate import alembic_config, upgrade
from newsletter.links import confirm_url
from newsletter.web.mails import SystemMails
from tests.conftest import write_config
from tests.db.test_address_key_migration import empty_url  # noqa: F401 - the fixture

PEOPLE = [  # email, name, language, status on the list
    ("form@example.org", "", "en", "pending"),
    ("twice@example.org", "Tom", "en", "pending"),
    ("added@example.org", "Ann Added", "fr", "pending"),
    ("done@example.org", "Dan", "en", "confirmed"),
]
EVENTS = [  # kind, email, source, data (JSON text)
    ("subscribe", "form@example.org", "https://example.org/join",
     '{"lists": ["news"], "language": "fr", "name": "Françoise", "outcome": "pending"}'),
    ("subscribe", "twice@example.org", None,
     '{"lists": ["news"], "language": "fr", "name": "Tom", "outcome": "pending"}'),
    ("subscribe", "twice@example.org", None,
     '{"lists": ["news"], "language": "es", "name": "Tomás", "outcome": "throttled"}'),
    ("import", "added@example.org", "import:people.csv", '{"status": "pending"}'),
    ("invite", "added@example.org", "cli", '{"language": "fr"}'),
    ("subscribe", "done@example.org", None, '{"lists": ["news"], "language": "en"}'),
]


def at_0004_with_pending_people(engine: Engine) -> None:
    """A database as the previous release left it: a list, people, their audit events."""
    upgrade(engine, "0004")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO lists (slug, name, default_language, languages, opt_in, public, "
            "description, created_at) VALUES ('news', 'News', 'en', '[\"en\", \"fr\", \"es\"]', "
            "'double', :public, '', CURRENT_TIMESTAMP)"), {"public": True})
        for email, name, language, status in PEOPLE:
            conn.execute(text(
                "INSERT INTO subscribers (email, name, language, attributes, created_at, "
                "updated_at) VALUES (:e, :n, :l, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                {"e": email, "n": name, "l": language})
            conn.execute(text(
                "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, "
                "updated_at) SELECT id, 1, :s, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP "
                "FROM subscribers WHERE email = :e"), {"s": status, "e": email})
        for kind, email, source, data in EVENTS:
            conn.execute(text(
                "INSERT INTO events (kind, subscriber_id, list_id, created_at, source, data) "
                "SELECT :k, id, 1, CURRENT_TIMESTAMP, :src, :d FROM subscribers "
                "WHERE email = :e"), {"k": kind, "src": source, "d": data, "e": email})


def test_pending_requests_survive_the_upgrade_and_confirm_as_before(
    empty_url, tmp_path: Path  # noqa: F811
) -> None:
    engine = make_engine(empty_url)
    at_0004_with_pending_people(engine)
    write_config(tmp_path, empty_url)
    # The link mailed to form@example.org before the upgrade.
    settings = load_settings(tmp_path, environ={})
    ctx = OptIn.from_settings(settings, engine, SystemMails(settings))
    with engine.connect() as conn:
        sid = conn.execute(text(
            "SELECT id FROM subscribers WHERE email = 'form@example.org'")).scalar_one()
    token = confirm_url("https://x", ctx.signer, sid, 1).rsplit("/", 1)[1]

    result = CliRunner().invoke(cli, ["-w", str(tmp_path), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        requests = conn.execute(text(
            "SELECT s.email, r.language, r.name, r.source FROM subscription_requests r "
            "JOIN subscribers s ON s.id = r.subscriber_id ORDER BY s.email")).all()
    assert [tuple(r) for r in requests] == [
        ("added@example.org", None, "", "import:people.csv"),  # nothing asked: kept as it is
        ("form@example.org", "fr", "Françoise", "form"),
        ("twice@example.org", "es", "Tomás", "form"),  # the latest request
    ]
    assert confirm(ctx, token, meta=RequestMeta()).outcome == "confirmed"
    with engine.connect() as conn:
        person = conn.execute(text(
            "SELECT name, language FROM subscribers WHERE id = :id"), {"id": sid}).one()
        left = conn.execute(text("SELECT count(*) FROM subscription_requests")).scalar()
    assert tuple(person) == ("Françoise", "fr") and left == 2
    command.downgrade(alembic_config(engine), "0004")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM subscriptions")).scalar() == 4
    engine.dispose()
