"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from newsletter.db.engine import make_engine
from newsletter.db.migrate import needs_upgrade
from newsletter.db.models import Base


def test_migrated_schema_matches_the_models(db_url):
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert not needs_upgrade(engine)
    engine.dispose()
    assert diff == []


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_head_constant_matches_the_migration_scripts(tmp_path):
    from newsletter.db.migrate import HEAD, script_head

    assert script_head(make_engine(f"sqlite:///{tmp_path / 'y.db'}")) == HEAD
