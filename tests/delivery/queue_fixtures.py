"""Delivery rows at hand for in-process tests of queue.py and journal.py (the `db` fixture)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update

from newsletter.audience.language import list_languages
from newsletter.db import pgsend, sender
from newsletter.db.tables import DELIVERIES, ISSUES
from newsletter.delivery import editions, issues
from newsletter.delivery import queue as q


def reading(default: str):
    """The seeded list's languages (en, fr, es) with this default for everyone else."""
    return list_languages(["en", "fr", "es"], default)


READERS = reading("en")

DEAD = f"{socket.gethostname()[:32]}:999999:dead"  # no such pid on this host
DEAD_TOO = f"{socket.gethostname()[:32]}:999998:dead"
FAR = "elsewhere.example:1:x"  # another host: alive until its lease expires
MAPPING = {"en": "en", "fr": "fr", "es": "es"}


@dataclass
class QueueDb:
    engine: Engine
    key: str
    workspace: Path

    def issue(self, slug: str = "nov", list_id: int = 1) -> int:
        with sender.write_tx(self.engine) as conn, conn.begin():
            return issues.open_issue(conn, slug, list_id).id

    def enqueue(self, issue_id: int, mapping: dict[str, str] = MAPPING,
                list_id: int = 1) -> int:
        with sender.write_tx(self.engine) as conn, conn.begin():
            return q.enqueue(conn, self.engine, issue_id=issue_id, list_id=list_id,
                             languages=READERS, address_key=self.key, mapping=mapping)

    def rows(self) -> dict[int, Any]:
        with self.engine.connect() as conn:
            return {r.id: r for r in conn.execute(select(DELIVERIES).order_by(DELIVERIES.c.id))}

    def ids(self, issue_id: int) -> list[int]:
        return [i for i, r in self.rows().items() if r.issue_id == issue_id]

    def set(self, ids: list[int], **values: object) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(DELIVERIES).where(DELIVERIES.c.id.in_(ids)).values(**values))

    def claim(self, issue_id: int, worker: str = "h:1:me", limit: int = 100,
              lease: float = 60) -> list[q.Claimed]:
        """A claim as the runner makes it: on PostgreSQL the fast path (db/pgsend.py)."""
        info = pgsend.conninfo(self.engine)
        if info is None:
            return q.claim(self.engine, issue_id, worker, limit, lease, self.key)

        async def fast() -> list[q.Claimed]:
            lane = pgsend.Lane(info)
            try:
                return await q.claim_fast(lane, issue_id, worker, limit, lease, self.key)
            finally:
                lane.close()

        return asyncio.run(fast())

    def issue_row(self, issue_id: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(ISSUES).where(ISSUES.c.id == issue_id)).one()


def near(value: datetime | None, expected: datetime, slack: float = 5.0) -> bool:
    return value is not None and abs((value - expected).total_seconds()) < slack


def edition(language: str, content_hash: str, subject: str = "News") -> editions.EditionRecord:
    return editions.EditionRecord(language=language, subject=subject, title="T", preheader="P",
                           issue_date="2026-11-20", volume="9", number="11",
                           web_html="<p>x</p>", text="x", content_hash=content_hash)
