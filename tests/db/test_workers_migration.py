"""Migration 0009 adds the workers table and issues.scheduled_at and loses nothing: an issue
under way at 0008, with its editions and deliveries, comes through the upgrade whole, can be
scheduled, and a worker can register."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, text

from newsletter.db.engine import make_engine
from newsletter.db.migrate import alembic_config, upgrade
from tests.db.test_address_key_migration import empty_url  # noqa: F401 - the fixture


def _at_0008_with_an_issue_under_way(engine: Engine) -> None:
    upgrade(engine, "0008")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO lists (slug, name, default_language, languages, opt_in, public, "
            "description, created_at) VALUES ('news', 'News', 'en', '[\"en\"]', 'double', "
            ":public, '', CURRENT_TIMESTAMP)"), {"public": True})
        conn.execute(text(
            "INSERT INTO issues (slug, list_id, status, created_at, data) "
            "VALUES ('nov', 1, 'sending', CURRENT_TIMESTAMP, '{\"k\": 1}')"))
        conn.execute(text(
            "INSERT INTO editions (issue_id, language, subject, title, preheader, issue_date, "
            "volume, number, web_html, text, content_hash, data) VALUES (1, 'en', 'News', '', "
            "'', '', '', '', '', 'Hello', 'h', '{}')"))
        for i in range(3):
            conn.execute(text(
                "INSERT INTO subscribers (email, name, attributes, created_at, updated_at) "
                "VALUES (:e, '', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                {"e": f"r{i}@example.org"})
            conn.execute(text(
                "INSERT INTO deliveries (issue_id, subscriber_id, list_id, language, status, "
                "attempts, created_at) VALUES (1, :s, 1, 'en', :st, 0, CURRENT_TIMESTAMP)"),
                {"s": i + 1, "st": ("sent", "queued", "deferred")[i]})


def _issue_and_rows(engine: Engine) -> tuple[tuple, list[tuple], list[tuple]]:
    with engine.connect() as conn:
        issue = tuple(conn.execute(text("SELECT slug, status, data FROM issues")).one())
        editions = [tuple(r) for r in conn.execute(text("SELECT language, text FROM editions"))]
        rows = [tuple(r) for r in conn.execute(text(
            "SELECT subscriber_id, status FROM deliveries ORDER BY id"))]
    return issue, editions, rows


def test_upgrade_to_0009_keeps_issues_under_way_and_takes_workers_and_schedules(
        empty_url) -> None:  # noqa: F811
    engine = make_engine(empty_url)
    _at_0008_with_an_issue_under_way(engine)
    before = _issue_and_rows(engine)
    upgrade(engine)
    assert _issue_and_rows(engine) == before
    with engine.begin() as conn:
        conn.execute(text("UPDATE issues SET status = 'scheduled', "
                          "scheduled_at = '2026-12-01 08:00:00'"))
        conn.execute(text(
            "INSERT INTO workers (name, host, pid, started_at, heartbeat_at, issue_id, sent, "
            "rate) VALUES ('h:1:t2:abc', 'h', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1, 0, "
            "0.0)"))
        assert conn.execute(text("SELECT issue_id FROM workers")).scalar() == 1
    command.downgrade(alembic_config(engine), "0008")
    issue, editions, rows = _issue_and_rows(engine)
    assert (editions, rows) == before[1:]
    assert issue[0] == "nov"
    engine.dispose()
