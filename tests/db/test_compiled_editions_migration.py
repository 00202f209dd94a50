"""Migration 0006 gives editions a column for the compiled edition and keeps every sent one."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from newsletter.db.engine import make_engine
from newsletter.db.migrate import alembic_config, upgrade
from newsletter.delivery.editions import EditionRecord, stored_editions
from tests.db.test_address_key_migration import empty_url  # noqa: F401 - the fixture

OLD_ROW = ("en", "Coalition news", "News", "What happened", "2026-11-20", "9", "11",
           "<html>web</html>", "Hello friend", "abc123")


def test_editions_sent_before_the_upgrade_keep_everything_and_have_no_compiled_copy(
        empty_url) -> None:  # noqa: F811
    engine = make_engine(empty_url)
    upgrade(engine, "0004")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO lists (slug, name, default_language, languages, opt_in, public, "
            "description, created_at) VALUES ('news', 'News', 'en', '[\"en\"]', 'double', "
            ":public, '', CURRENT_TIMESTAMP)"), {"public": True})
        conn.execute(text(
            "INSERT INTO issues (slug, list_id, status, created_at, data) "
            "VALUES ('nov', 1, 'sending', CURRENT_TIMESTAMP, '{}')"))
        conn.execute(text(
            "INSERT INTO editions (issue_id, language, subject, title, preheader, issue_date, "
            "volume, number, web_html, text, content_hash, sent_at, data) VALUES (1, :l, :s, "
            ":t, :p, :d, :v, :n, :w, :x, :h, CURRENT_TIMESTAMP, '{}')"),
            dict(zip("lstpdvnwxh", OLD_ROW, strict=True)))
    upgrade(engine)
    with engine.connect() as conn:
        # No compiled copy: a send resumed on it compiles from the workspace, as before.
        assert stored_editions(conn, 1) == {"en": EditionRecord(*OLD_ROW, compiled=None)}
        assert conn.execute(text("SELECT sent_at FROM editions")).scalar() is not None
    command.downgrade(alembic_config(engine), "0004")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT subject, text FROM editions")).one() == \
            ("Coalition news", "Hello friend")
    engine.dispose()
