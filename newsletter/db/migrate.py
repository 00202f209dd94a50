"""Run the Alembic migrations shipped inside the package.

Alembic is imported only when migrating: every CLI command checks the schema version, and that
check is one query against `alembic_version` compared with HEAD, not an Alembic start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import OperationalError

from newsletter.db.engine import unreachable

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0012"  # the newest revision in migrations/versions; a test keeps the two in step


def alembic_config(engine: Engine, secret_key: str = "") -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    # Migration 0003 keeps existing suppression hashes valid with the current secret key.
    cfg.attributes["secret_key"] = secret_key
    return cfg


def script_head(engine: Engine) -> str | None:
    """The head revision according to the migration scripts themselves."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def upgrade(engine: Engine, revision: str = "head", secret_key: str = "") -> None:
    """Bring the schema to the newest revision; safe to run any number of times."""
    from alembic import command

    try:
        command.upgrade(alembic_config(engine, secret_key), revision)
    except OperationalError as exc:
        raise unreachable(exc, engine) from None


def needs_upgrade(engine: Engine) -> bool:
    """True when the schema is missing or behind."""
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return True
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except OperationalError as exc:
        raise unreachable(exc, engine) from None
    return current != HEAD
