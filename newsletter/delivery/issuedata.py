"""The issue row's `data` JSON: what an issue keeps besides its columns (the time zone of its
schedule, the sender identity of its enqueue, its roll-up), read and merged in one place."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from newsletter.db.tables import ISSUES


def read(conn: Connection, issue_id: int) -> dict[str, Any]:
    """The issue's data (empty when it has none)."""
    return dict(conn.scalar(select(ISSUES.c.data).where(ISSUES.c.id == issue_id)) or {})


def merge(conn: Connection, issue_id: int, keys: dict[str, Any], **columns: Any) -> None:
    """Set these keys of the issue's data, keeping the others, and these columns with them."""
    data = {**read(conn, issue_id), **keys}
    conn.execute(update(ISSUES).where(ISSUES.c.id == issue_id).values(data=data, **columns))
