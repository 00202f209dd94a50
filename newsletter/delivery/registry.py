"""The `workers` table: who runs `newsletter worker`, where, since when, on what, how fast.

A worker registers when it starts (`register`), refreshes its row about every second
(`heartbeat`) and deletes it when it stops (`deregister`). A row whose heartbeat is older than
`STALE_AFTER` seconds belongs to a worker that died without saying so: `newsletter workers`
shows it as gone, and `prune` deletes it. The live workers delete the rows silent for
`PRUNE_AFTER` seconds themselves, each at most once every `PRUNE_EVERY` seconds
(`prune_now_and_then`, after its heartbeat), so dead workers do not pile up. The rows are for
people, for `issue status` and for the workers' parts of the per-second limits (`heartbeat`
counts the live ones: pacing.py); the claims themselves never depend on them (queue.py's leases
do that).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select, update

from newsletter.db.models import utcnow
from newsletter.db.tables import ISSUES, WORKERS
from newsletter.delivery.liveness import host_name

BEAT_EVERY = 1.0  # seconds between two heartbeats of a `send` run's process
STALE_AFTER = 10.0  # seconds without a heartbeat before a worker counts as gone
PRUNE_AFTER = 60.0  # seconds without a heartbeat before a live worker deletes the row
PRUNE_EVERY = 60.0  # seconds between two prunes by one worker


@dataclass(frozen=True)
class WorkerInfo:
    """One row of `newsletter workers`."""

    name: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    issue: str | None  # the slug of the issue it is on
    sent: int
    rate: float
    alive: bool


@dataclass
class Pulse:
    """The figures a worker's heartbeat writes: what it sent, and its rate between beats."""

    rate: float = 0.0
    at: float = field(default_factory=time.monotonic)
    sent: int = 0

    def beat(self, sent: int) -> float:
        """The rate (messages a second) now that `sent` messages are sent, smoothed."""
        now = time.monotonic()
        if now > self.at:
            current = (sent - self.sent) / (now - self.at)
            self.rate = current if not self.rate else 0.5 * self.rate + 0.5 * current
        self.at, self.sent = now, sent
        return round(self.rate, 1)


def register(engine: Engine, name: str) -> None:
    """Add this process's row (its name from liveness.worker_name)."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(WORKERS).values(name=name, host=host_name(), pid=os.getpid(),
                                            started_at=now, heartbeat_at=now, sent=0,
                                            rate=0.0))


def heartbeat(engine: Engine, name: str, issue_id: int | None, sent: int, rate: float) -> int:
    """Refresh the row (put it back if someone pruned it while this worker was slow); how many
    workers are live now, this one included (pacing.py divides the per-second limits by it)."""
    now = utcnow()
    with engine.begin() as conn:
        changed = conn.execute(update(WORKERS).where(WORKERS.c.name == name).values(
            heartbeat_at=now, issue_id=issue_id, sent=sent, rate=rate)).rowcount
        live = conn.scalar(select(func.count()).select_from(WORKERS).where(
            WORKERS.c.heartbeat_at >= now - timedelta(seconds=STALE_AFTER)))
    if not changed:
        register(engine, name)
        return heartbeat(engine, name, issue_id, sent, rate)
    return max(1, int(live or 0))


def deregister(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(WORKERS).where(WORKERS.c.name == name))


def workers(engine: Engine, stale_after: float = STALE_AFTER) -> list[WorkerInfo]:
    """Every registered worker, oldest first; `alive` False when its heartbeat stopped."""
    limit = utcnow() - timedelta(seconds=stale_after)
    query = (select(WORKERS, ISSUES.c.slug)
             .outerjoin(ISSUES, ISSUES.c.id == WORKERS.c.issue_id)
             .order_by(WORKERS.c.started_at, WORKERS.c.id))
    with engine.connect() as conn:
        return [WorkerInfo(r.name, r.host, r.pid, r.started_at, r.heartbeat_at, r.slug, r.sent,
                           r.rate, r.heartbeat_at >= limit) for r in conn.execute(query)]


def on_issue(engine: Engine, issue_id: int, stale_after: float = STALE_AFTER) -> list[WorkerInfo]:
    """The live workers sending this issue now."""
    with engine.connect() as conn:
        slug = conn.scalar(select(ISSUES.c.slug).where(ISSUES.c.id == issue_id))
    return [w for w in workers(engine, stale_after) if w.alive and w.issue == slug]


def prune(engine: Engine, stale_after: float = STALE_AFTER) -> int:
    """Delete the rows of workers whose heartbeat stopped; how many."""
    limit = utcnow() - timedelta(seconds=stale_after)
    with engine.begin() as conn:
        return conn.execute(delete(WORKERS).where(WORKERS.c.heartbeat_at < limit)).rowcount


def prune_now_and_then(engine: Engine, last: datetime | None) -> datetime | None:
    """Prune the rows silent for PRUNE_AFTER unless this worker did less than PRUNE_EVERY
    ago (by the package's clock); when it last did."""
    now = utcnow()
    if last is not None and 0 <= (now - last).total_seconds() < PRUNE_EVERY:
        return last
    prune(engine, PRUNE_AFTER)
    return now
