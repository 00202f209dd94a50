"""Migration 0004 gives lists per-language names and keeps every existing list as it was."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from newsletter.audience.lists import get_list
from newsletter.db.engine import make_engine
from newsletter.db.migrate import alembic_config, upgrade
from tests.db.test_address_key_migration import empty_url  # noqa: F401 - the fixture


def test_lists_made_before_the_upgrade_keep_their_names(empty_url) -> None:  # noqa: F811
    engine = make_engine(empty_url)
    upgrade(engine, "0003")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO lists (slug, name, default_language, languages, opt_in, public, "
            "description, created_at) VALUES ('news', 'Network News', 'en', '[\"en\", \"fr\"]', "
            "'double', :public, 'Monthly.', CURRENT_TIMESTAMP)"), {"public": True})
    upgrade(engine)
    news = get_list(engine, "news")
    assert (news.name, news.languages, news.names) == ("Network News", ["en", "fr"], {})
    assert news.display_name("fr") == "Network News"  # no French name yet: the one it had
    with engine.begin() as conn:
        conn.execute(text("UPDATE lists SET names = :names"),
                     {"names": '{"en": "Network News", "fr": "Nouvelles"}'})
    assert get_list(engine, "news").display_name("fr") == "Nouvelles"
    command.downgrade(alembic_config(engine), "0003")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name, description FROM lists")).one() == \
            ("Network News", "Monthly.")
    engine.dispose()
