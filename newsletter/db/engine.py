"""The one place that creates database engines: SQLite pragmas, PostgreSQL driver choice."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from newsletter.errors import NewsletterError


class DatabaseError(NewsletterError):
    """The database URL is wrong or the server cannot be reached."""


def redact_url(url: str) -> str:
    """The URL with its password masked, for messages and reprs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def unreachable(exc: BaseException, engine: Engine) -> DatabaseError:
    """The one line saying why the database cannot be reached (drivers write several)."""
    database = engine.url.database
    if is_sqlite(engine) and database and not database.startswith("file:"):
        folder = Path(database).parent
        if database != ":memory:" and not folder.is_dir():
            # SQLite itself only says "unable to open database file".
            return DatabaseError(f"cannot open the SQLite database {database}: "
                                 f"folder {folder} does not exist")
    reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
    return DatabaseError(f"cannot reach the database: {reason}")


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Deleted and overwritten rows are zeroed in the file, so an erased address leaves no old
    # copy behind (audience/erasure.py). The app deletes almost nothing, so this costs ~nothing.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL and a busy timeout on every connection."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        # Not shown: a URL we cannot parse is one whose password we cannot find to mask.
        raise DatabaseError("invalid database URL: expected driver://user:password@host:port/"
                            "name or sqlite:///path") from None
    except ValueError:
        raise DatabaseError(f"invalid database URL {redact_url(url)!r}: the port must be a "
                            "number") from None
    if parsed.get_backend_name() == "sqlite":
        if "\0" in (parsed.database or ""):
            raise DatabaseError("invalid database URL: the SQLite path contains a NUL byte")
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True, **kwargs)
    except Exception as exc:  # missing driver and the like
        shown = parsed.render_as_string(hide_password=True)
        raise DatabaseError(f"cannot use database URL {shown}: {exc}") from None



def is_sqlite(bind: Engine | Connection) -> bool:
    """The one test of which engine runs: SQLite, else PostgreSQL (the two we support)."""
    return bind.dialect.name == "sqlite"


def sqlite_time(value: datetime) -> str:
    """A datetime as SQLAlchemy stores it in SQLite (naive UTC, microseconds), for raw SQL."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(sep=" ", timespec="microseconds")
