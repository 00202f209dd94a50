"""The consent and audit trail (`events`): who did what, when, from where, under which text.

Events are a record of what happened, never read back as state: what a pending subscription
asked for lives in `subscription_requests` (see audience/subscriptions.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from newsletter.db.engine import is_sqlite, sqlite_time
from newsletter.db.tables import EVENTS

EVENT_INSERT = EVENTS.insert()  # built once: building a statement costs more than running it


@dataclass(frozen=True)
class RequestMeta:
    """Where a request came from, for the consent trail and the rate limits."""

    ip: str | None = None
    user_agent: str | None = None
    source: str | None = None
    consent_text: str | None = None


def record_event(
    conn: Connection,
    kind: str,
    meta: RequestMeta,
    now: datetime,
    subscriber_id: int | None = None,
    list_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append one entry to the consent and audit trail."""
    conn.execute(EVENT_INSERT, event_row(kind, meta, now, subscriber_id, list_id, data))


def event_row(
    kind: str,
    meta: RequestMeta,
    now: datetime,
    subscriber_id: int | None = None,
    list_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The values of one audit entry, for EVENT_INSERT (several go in one executemany)."""
    return {
        "kind": kind,
        "subscriber_id": subscriber_id,
        "list_id": list_id,
        "created_at": now,
        "ip": (meta.ip or None) and meta.ip[:64],
        "user_agent": (meta.user_agent or None) and meta.user_agent[:512],
        "source": (meta.source or None) and meta.source[:512],
        "consent_text": meta.consent_text,
        "data": data or {},
    }


_SQLITE_EVENTS = (
    "INSERT INTO events (kind, subscriber_id, list_id, created_at, ip, user_agent, source, "
    "consent_text, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Many audit entries in one executemany.

    On SQLite the rows go to the driver as the models store them (naive UTC text, JSON text):
    SQLAlchemy's per-row parameter processing cost more than SQLite's insert, and in the web
    app it runs on the writer thread, which shares the GIL with the requests.
    """
    if not is_sqlite(conn):
        conn.execute(EVENT_INSERT, rows)
        return
    conn.exec_driver_sql(_SQLITE_EVENTS, [
        (r["kind"], r["subscriber_id"], r["list_id"], sqlite_time(r["created_at"]), r["ip"],
         r["user_agent"], r["source"], r["consent_text"], json.dumps(r["data"]))
        for r in rows
    ])
