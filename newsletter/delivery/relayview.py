"""The relays as every worker sees them: which are out, and what each hourly limit has left.

Each sending worker, and each process's outbox (mailrun.py), keeps its own picture of the
relays (relays.py: `RelaySet`): those of `[[smtp.relays]]`, or the one `[smtp]` relay, named
host:port here. Two facts about them are shared through the database, so the workers of every
host and every run act on the same ones:

- A relay taken out. The worker whose strikes take a relay out writes it to `relay_state`
  (out until when, and why) within moments; every worker reads that table about once a second
  (`SYNC_EVERY`, in `SharedView.sync`, never per message) and leaves the relay until then. So
  a relay failing for one worker is left by all within about a second without each striking it
  first, and a run started during the cool-down never connects to it. When every relay is out
  in the shared view, the run stops as when it took them all out itself.
- The hourly limits (`hourly`). What counts against a relay's limit is in `relay_hours`, one
  row per relay and UTC hour. A worker reserves a batch (about two seconds of its pace, at
  least a few messages per connection) in one short transaction, takes messages from it
  without asking the database (`HourlyBudget.take`, an integer decrement), and at its next
  sync gives back what it did not use and reserves the next batch.

- A relay back. Before a send, `check_reachable` tries each relay, those out too: one that
  answers is put back in for every worker (the operator who starts a send fixed it).

The bound: a row counts every message reserved, sent or not, and a reservation never takes the
count over the limit, so all workers and runs together have at most `hourly` messages counted
in "the last hour", estimated as this UTC hour's count plus the previous hour's weighted by the
part of it still within the last 60 minutes. The estimate is exact when the previous hour's
messages were spread evenly; in the worst case (all of them sent at its very end) a true
60-minute window can hold up to twice `hourly`. A worker that dies keeps its unused reservation
counted until the hour passes (fewer messages, never more).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine, bindparam, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from newsletter.config import Settings
from newsletter.db.models import UTCDateTime, utcnow
from newsletter.db.sender import write_tx
from newsletter.db.tables import RELAY_HOURS, RELAY_STATE
from newsletter.delivery.errors import RelayUnavailable
from newsletter.delivery.relay import every_relay
from newsletter.delivery.smtp import Unreachable, probe

log = logging.getLogger(__name__)

HOUR = 3600
SYNC_EVERY = 1.0  # s between two reads of the shared view by a worker
SOONEST = 0.1  # s: a worker whose reservation ran out asks again no sooner than this
PER_CONNECTION = 4  # the smallest reservation, per connection the relay may hold

TAKE_OUT = text(
    "INSERT INTO relay_state (name, out_until, reason, updated_at) "
    "VALUES (:name, :until, :reason, :now) ON CONFLICT (name) DO UPDATE SET "
    "out_until = excluded.out_until, reason = excluded.reason, updated_at = excluded.updated_at"
).bindparams(bindparam("until", type_=UTCDateTime()), bindparam("now", type_=UTCDateTime()))
NEW_HOUR = text("INSERT INTO relay_hours (relay, hour, sent) VALUES (:relay, :hour, 0) "
                "ON CONFLICT (relay, hour) DO NOTHING")


@dataclass(frozen=True)
class RelayOut:
    """A relay out of every send until `until` (UTC), and why."""

    name: str
    until: datetime
    reason: str


def hour_of(moment: datetime) -> int:
    """The UTC hour a moment falls in, counted from 1970."""
    return int(moment.timestamp() // HOUR)


def relays_out(conn: Connection | Engine, now: datetime | None = None) -> list[RelayOut]:
    """The relays out now in the shared view, by name."""
    if isinstance(conn, Engine):
        with conn.connect() as c:
            return relays_out(c, now)
    query = (select(RELAY_STATE.c.name, RELAY_STATE.c.out_until, RELAY_STATE.c.reason)
             .where(RELAY_STATE.c.out_until > (now or utcnow())).order_by(RELAY_STATE.c.name))
    return [RelayOut(name, until, reason) for name, until, reason in conn.execute(query)]


def take_out(conn: Connection | Engine, name: str, until: datetime, reason: str) -> None:
    """Write that a relay is out until `until` for every worker (the last writer wins)."""
    if isinstance(conn, Engine):
        with conn.begin() as c:
            take_out(c, name, until, reason)
        return
    conn.execute(TAKE_OUT, {"name": name, "until": until, "reason": reason, "now": utcnow()})


def put_back(conn: Connection | Engine, name: str) -> None:
    """End a relay's take-out now, for every worker (it was seen to answer again)."""
    if isinstance(conn, Engine):
        with conn.begin() as c:
            put_back(c, name)
        return
    conn.execute(update(RELAY_STATE).where(RELAY_STATE.c.name == name)
                 .values(out_until=None, updated_at=utcnow()))


def hour_used(conn: Connection, relay: str, now: datetime, lock: bool = False) -> float:
    """Messages counted against the relay in the last 60 minutes (estimated, see the top)."""
    hour = hour_of(now)
    query = select(RELAY_HOURS.c.hour, RELAY_HOURS.c.sent).where(
        RELAY_HOURS.c.relay == relay, RELAY_HOURS.c.hour.in_((hour - 1, hour)))
    counts = dict(conn.execute(query.with_for_update() if lock else query).all())
    still = 1.0 - (now.timestamp() % HOUR) / HOUR  # the previous hour's part in the window
    return counts.get(hour, 0) + counts.get(hour - 1, 0) * still


class HourlyBudget:
    """One relay's hourly limit in this worker: messages it reserved and has not sent yet.

    Without a shared view (no database) the reservation is the worker's share of the limit
    for its whole run, as before the view existed.
    """

    def __init__(self, limit: float, room: int = 1, shared: bool = False) -> None:
        self.limit = max(1, int(limit)) if limit > 0 else 0  # a worker's share is at least 1
        self.left = 0 if shared else self.limit  # reserved in `hour`, not sent yet
        self.hour: int | None = None
        self.least = PER_CONNECTION * room
        self.taken = 0  # sent since the last sync: the pace of the next reservation
        self.asking = False  # the reservation ran out: sync sooner

    def full(self, now: float = 0.0) -> bool:
        return bool(self.limit) and self.left <= 0

    def free_at(self, now: float) -> float:
        return now + SYNC_EVERY if self.full(now) else now

    def take(self) -> bool:
        """Count one message now; False (counting nothing) when the reservation is spent."""
        if not self.limit:
            return True
        if self.left <= 0:
            self.asking = True
            return False
        self.left -= 1
        self.taken += 1
        return True

    def wanted(self, stopping: bool) -> int:
        """What to hold after the next sync: two seconds of the last second's pace."""
        if stopping:
            return 0
        return max(self.least, 2 * self.taken)

    def settle(self, hour: int, change: int, counted: int) -> None:
        """After a reservation committed: `change` more held in `hour`, `counted` of the
        messages taken are in the pace of the next one."""
        self.hour = hour
        self.left += change
        self.taken -= counted
        self.asking = False


def reserve(conn: Connection, relay: str, limit: int, now: datetime, held: int,
            hour: int | None, want: int) -> tuple[int, int]:
    """Give back what is held in an hour gone by, then bring what is held in this hour to
    `want` without taking the count over `limit`; (this hour, the change to what is held)."""
    this = hour_of(now)
    change = 0
    if hour is not None and hour != this:
        _add(conn, relay, hour, -held)
        change, held = -held, 0
    conn.execute(NEW_HOUR, {"relay": relay, "hour": this})
    room = math.floor(limit - hour_used(conn, relay, now, lock=True) + 1e-9)
    more = max(-held, min(want - held, room))
    _add(conn, relay, this, more)
    return this, change + more


def _add(conn: Connection, relay: str, hour: int, change: int) -> None:
    if change:
        conn.execute(update(RELAY_HOURS)
                     .where(RELAY_HOURS.c.relay == relay, RELAY_HOURS.c.hour == hour)
                     .values(sent=RELAY_HOURS.c.sent + change))


class Shared(Protocol):
    """What the view needs of a relay in this worker (relays.RelayState has it)."""

    @property
    def name(self) -> str: ...

    out_until: float
    reason: str
    hourly: HourlyBudget


class SharedView:
    """A worker's link to the shared view: writes its take-outs, reads the others' and
    keeps its hourly reservations, about every second, in a thread."""

    def __init__(self, engine: Engine, states: Sequence[Shared]) -> None:
        self.engine = engine
        self.states = {s.name: s for s in states}
        self.outs: list[tuple[str, float, str]] = []  # (name, seconds, reason) to write
        self.wake = asyncio.Event()
        self.synced = 0.0

    def taken_out(self, name: str, seconds: float, reason: str) -> None:
        """This worker took a relay out: written at the next sync, which comes at once."""
        self.outs.append((name, seconds, reason))
        self.wake.set()

    async def sync(self, stopping: bool = False) -> bool:
        """One exchange with the database; True when a relay went out here because of it."""
        outs, self.outs = self.outs, []
        # What each budget holds now: the thread works on these numbers, and the budgets
        # (which the connections keep taking from meanwhile) change only once it committed.
        held = {s.name: (s.hourly.limit, s.hourly.left, s.hourly.hour, s.hourly.wanted(stopping),
                         s.hourly.taken) for s in self.states.values() if s.hourly.limit}
        self.synced = time.monotonic()
        try:
            seen, changes = await asyncio.to_thread(self._exchange, outs, held)
        except (SQLAlchemyError, OSError) as exc:  # the journal says so if it lasts
            self.outs[:0] = outs  # written next time
            log.warning("shared view of the SMTP relays: %s", str(exc).splitlines()[0])
            return False
        for name, (hour, change) in changes.items():
            self.states[name].hourly.settle(hour, change, held[name][4])
        return self._apply(seen)

    def _exchange(self, outs: Iterable[tuple[str, float, str]],
                  held: dict[str, tuple[int, int, int | None, int, int]],
                  ) -> tuple[list[RelayOut], dict[str, tuple[int, int]]]:
        now = utcnow()
        changes = {}
        with write_tx(self.engine) as conn, conn.begin():
            for name, seconds, reason in outs:
                take_out(conn, name, now + timedelta(seconds=seconds), reason)
            for name, (limit, left, hour, want, _taken) in held.items():
                changes[name] = reserve(conn, name, limit, now, left, hour, want)
            return relays_out(conn, now), changes

    def _apply(self, seen: list[RelayOut]) -> bool:
        now, clock = utcnow(), time.monotonic()
        changed = False
        for out in seen:
            state = self.states.get(out.name)
            until = clock + (out.until - now).total_seconds()
            if state is None or until <= state.out_until + 0.5:  # known here already
                continue
            if state.out_until <= clock:
                log.warning("SMTP relay %s is out until %s UTC (taken out elsewhere: %s)",
                            out.name, f"{out.until:%H:%M:%S}", out.reason)
            state.out_until, state.reason = until, out.reason
            changed = True
        return changed

    def due(self) -> float:
        """Seconds until the next sync should run."""
        asking = any(s.hourly.asking for s in self.states.values())
        wait = (SOONEST if asking else SYNC_EVERY) - (time.monotonic() - self.synced)
        return 0.0 if self.outs else max(0.0, wait)


async def check_reachable(settings: Settings, engine: Engine | None = None) -> None:
    """Before a send: raise RelayUnavailable when no relay answers (naming each and why).

    With `engine`, each relay out in the shared view is tried too, and one that answers now is
    put back in for every worker: the operator who starts `send` fixed it."""
    relays = every_relay(settings)
    out = set()
    if engine is not None:
        out = {o.name for o in await asyncio.to_thread(relays_out, engine)}
    down, answered = [], False
    for relay in relays:
        if answered and relay.key not in out:
            continue
        try:
            await probe(relay)
        except Unreachable as exc:
            down.append(f"{relay.name + ' at ' if relay.name else ''}{relay.describe()} "
                        f"{exc.reason}")
            continue
        answered = True
        if relay.key in out and engine is not None:
            await asyncio.to_thread(put_back, engine, relay.key)
            log.warning("SMTP relay %s answers again: back in for every worker", relay.key)
    if answered:
        return
    if len(relays) == 1:
        raise RelayUnavailable(f"cannot send: the SMTP relay at {down[0]}")
    raise RelayUnavailable("cannot send: every SMTP relay is down: " + "; ".join(down))
