"""Several SMTP relays for one send: which relay next, their limits, failover, domain limits.

A worker's connections (`[smtp] connections`) are spread over the relays of `[[smtp.relays]]`
by weight, a relay never holding more than its own `connections`. Each connection is a `Slot`:
it binds to the relay with the fewest connections for its weight, sends over it through one
`pool.Connection` (the at-most-once protocol is the pool's and the journal's, unchanged), and
picks again each time it would reconnect anyway, so the spread follows the relays' health.

Each relay keeps its own rate limits (per second, for the whole network like `[smtp] rate`:
pacing.py; per hour, counted in the database: relayview.py) and its own strikes (`pool.RelayHealth`:
failed connects, refused senders, 421s, in a row). A relay with too many strikes is taken out
for `[smtp] cooldown` seconds; its connections move to the others, and the messages it could
not send go back to the shared queue, so another relay sends them (a deferral is retried on
whichever relay is in). With a database the take-out is written to the shared view, so every
worker and the outbox leave that relay within about a second (relayview.py). Only when every
relay is out at once does the send stop, with RelayUnavailable naming each and why.

Without `[[smtp.relays]]` the `[smtp]` relay is the only one (named host:port in the shared
view): taking it out stops the send with the same message as before relays existed, and keeps
every worker and the outbox off it for the cool-down. `DomainLimits` spaces the messages to one
recipient domain (`[smtp.domain_limits]`) with this process's part of each limit.

What went through which relay is counted in the journal's counts (so `RunResult.counts`) under
keys made by `sent_key` and `out_key`; `relay_report` reads them back for `send`'s report.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.delivery.errors import RelayUnavailable
from newsletter.delivery.pacing import Pacing
from newsletter.delivery.pool import (
    Build,
    Connection,
    Intend,
    PoolSettings,
    RateLimiter,
    RelayHealth,
)
from newsletter.delivery.queue import Claimed, Outcome
from newsletter.delivery.relay import Relay, every_relay
from newsletter.delivery.relayview import SOONEST, HourlyBudget, SharedView

log = logging.getLogger(__name__)

WAIT = 0.5  # longest pause of a connection waiting for a relay to have room
SENT, OUT = "relay sent\t", "relay out\t"


def sent_key(name: str) -> str:
    """The counts key of the messages a relay took."""
    return SENT + name


def out_key(name: str, reason: str) -> str:
    """The counts key of a relay taken out, and why."""
    return f"{OUT}{name}\t{reason}"


async def nap(event: asyncio.Event, seconds: float) -> None:
    """Wait until `event` is set or `seconds` have passed. A cancel always goes through:
    asyncio.wait_for (Python 3.11) loses one that comes just as the event is set, and the run
    then waited for this task for ever."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((waiter,), timeout=seconds)
    finally:
        waiter.cancel()


@dataclass
class RelayUse:
    """One relay's part in a send, as `send` reports it."""

    name: str
    sent: int = 0
    taken_out: list[str] = field(default_factory=list)  # why, once per time

    def describe(self) -> str:
        text = f"{self.name} {self.sent}"
        if self.taken_out:
            times = "once" if len(self.taken_out) == 1 else f"{len(self.taken_out)} times"
            text += f" (taken out {times}: {self.taken_out[0]})"
        return text


def relay_report(counts: Mapping[str, int]) -> list[RelayUse]:
    """Per relay: messages sent and the times it was taken out; empty with a single relay."""
    uses: dict[str, RelayUse] = {}
    for key, n in sorted(counts.items()):
        if key.startswith(SENT):
            name = key[len(SENT):]
            uses.setdefault(name, RelayUse(name)).sent += n
        elif key.startswith(OUT):
            name, _, reason = key[len(OUT):].partition("\t")
            uses.setdefault(name, RelayUse(name)).taken_out.extend([reason] * n)
    return list(uses.values())


@dataclass(eq=False)
class RelayState:
    """One relay in this worker: its limits, connections, strikes, and whether it is out."""

    relay: Relay
    weight: float
    room: int  # connections it may hold
    health: RelayHealth
    rate: RateLimiter
    hourly: HourlyBudget
    active: int = 0
    out_until: float = 0.0
    reason: str = ""

    @property
    def name(self) -> str:
        return self.relay.key

    def usable(self, now: float) -> bool:
        return self.out_until <= now and not self.hourly.full(now)

    def fine(self) -> bool:
        """usable() now, without asking the clock while the relay was never out or limited."""
        if not self.out_until and not self.hourly.limit:
            return True
        return self.usable(time.monotonic())

    @property
    def paced(self) -> bool:
        return bool(self.rate.interval)

    def ready_at(self, now: float) -> float:
        return max(self.out_until, self.hourly.free_at(now))


class DomainLimits:
    """Messages per second to each limited recipient domain: this process's part (pacing.py)."""

    def __init__(self, limiters: Mapping[str, RateLimiter]) -> None:
        self.limiters = dict(limiters)

    async def wait(self, email: str) -> None:
        if not self.limiters:
            return
        limiter = self.limiters.get(email[email.rfind("@") + 1:].lower())
        if limiter is not None:
            await limiter.wait()


class RelaySet:
    """The relays of one worker: which relay a connection takes, and which are out."""

    def __init__(self, states: list[RelayState], pool: PoolSettings, cooldown: float,
                 pacing: Pacing, report: Counter[str] | None = None,
                 engine: Engine | None = None) -> None:
        self.states, self.pool, self.cooldown = states, pool, cooldown
        self.domains = DomainLimits(pacing.domains)
        # Which relays are out and the hourly budgets, shared with every worker (relayview.py)
        self.view = SharedView(engine, states) if engine is not None else None
        self.limiter = pacing.send  # [smtp] rate, over every relay
        self.report = report if len(states) > 1 else None
        # Whether any limit applies: without one, pacing a message costs one attribute read.
        self.paced = bool(self.domains.limiters or self.limiter.interval
                          or any(s.paced for s in states))
        self.fatal: RelayUnavailable | None = None
        self.changed = asyncio.Event()

    @classmethod
    def for_worker(cls, settings: Settings, pool: PoolSettings, workers: int = 1,
                   report: Counter[str] | None = None, engine: Engine | None = None,
                   pacing: Pacing | None = None) -> RelaySet:
        """The configured relays. The per-second limits are `pacing`'s (the process's, shared
        by its runs), else 1/`workers` of each (pool.rate is that part of [smtp] rate already).
        With `engine`, which relays are out and the hourly limits are shared with every worker
        through the database (relayview.py); without, each hourly limit is split like the
        rates."""
        share = max(1, workers)
        pacing = pacing or Pacing.of(settings, pool.rate * share, share)
        entries = settings.smtp.relays
        shared = engine is not None
        states = []
        for number, relay in enumerate(every_relay(settings)):
            entry = entries[number] if entries else None
            room = min(entry.connections, pool.connections) if entry else pool.connections
            strikes = pool.strikes or 3 * room
            states.append(RelayState(
                relay, entry.weight if entry else 1.0, room, RelayHealth(strikes, relay),
                pacing.relay(relay.name),
                HourlyBudget(0 if entry is None else entry.hourly if shared
                             else entry.hourly / share, room, shared)))
        return cls(states, pool, settings.smtp.cooldown, pacing, report, engine)

    async def join(self) -> None:
        """Before the first connection: read the shared view, reserve the hourly budgets."""
        if self.view is not None:
            await self._sync()

    async def keep_in_step(self) -> None:
        """Until cancelled: exchange with the shared view about every second, at once after
        a take-out here, soon after an hourly reservation ran out."""
        view = self.view
        if view is None:
            return
        while True:
            while (delay := view.due()) > 0:
                view.wake.clear()
                await nap(view.wake, min(delay, SOONEST))
            await self._sync()

    async def refresh(self) -> None:
        """Between the passes of the outbox: exchange with the shared view when it is due."""
        if self.view is not None and self.view.due() <= 0:
            await self._sync()

    async def leave(self) -> None:
        """At the end of a run: write what is left to write, give back the reservations."""
        if self.view is not None:
            await self._sync(stopping=True)

    async def _sync(self, stopping: bool = False) -> None:
        assert self.view is not None
        if await self.view.sync(stopping) and self.fatal is None:
            now = time.monotonic()
            if all(s.out_until > now for s in self.states):
                self.fatal = self._every_out()
        self.changed.set()  # a relay out, or a new reservation: the connections look again

    def _every_out(self) -> RelayUnavailable:
        if len(self.states) == 1:  # as the relay's own strikes say it (pool.RelayHealth)
            only = self.states[0]
            return RelayUnavailable(
                f"stopped sending: the SMTP relay at {only.relay.describe()} {only.reason}")
        return RelayUnavailable("stopped sending: every SMTP relay is out: " + "; ".join(
            f"{s.name} at {s.relay.describe()} {s.reason}" for s in self.states))

    def slot(self) -> Slot:
        return Slot(self)

    async def acquire(self) -> RelayState | None:
        """The relay with the fewest connections for its weight; None after a short wait
        when none has room (the caller asks again, or stops)."""
        now = time.monotonic()
        free = [s for s in self.states if s.active < s.room and s.usable(now)]
        if free:
            best = min(free, key=lambda s: (s.active + 1) / s.weight)
            best.active += 1
            return best
        wake = min(s.ready_at(now) for s in self.states) - now
        self.changed.clear()
        await nap(self.changed, min(max(wake, 0.01), WAIT))
        return None

    def release(self, state: RelayState) -> None:
        state.active -= 1
        self.changed.set()

    def check(self, state: RelayState) -> None:
        """Take the relay out for the cool-down once its strikes say so."""
        health = state.health
        if health.fatal is None:
            return
        error, reason = health.fatal, health.reason
        health.failures, health.fatal, health.reason = 0, None, ""
        now = time.monotonic()
        if state.out_until > now:
            return
        state.out_until, state.reason = now + self.cooldown, reason
        others = [s for s in self.states if s is not state]
        if self.view is not None:
            self.view.taken_out(state.name, self.cooldown, reason)
        if all(s.out_until > now for s in others):
            self.fatal = error if not others else self._every_out()
        else:
            log.warning("SMTP relay %s at %s %s: taken out for %.0f s", state.name,
                        state.relay.describe(), reason, self.cooldown)
        if self.report is not None:
            self.report[out_key(state.name, reason)] += 1
        self.changed.set()

    def carried(self, state: RelayState, outcome: Outcome | None) -> None:
        if self.report is not None and outcome is not None and outcome.status == "sent":
            self.report[sent_key(state.name)] += 1


class Slot:
    """One of a worker's connections: bound to one relay at a time, moved when it is out.

    It has the surface of `pool.Connection` that the runner uses (ensure, pipelining, send,
    close), plus `bind` (a relay with room, before taking a job) and `pace` (the limits).
    """

    def __init__(self, relays: RelaySet) -> None:
        self.relays = relays
        self.state: RelayState | None = None
        self.conn: Connection | None = None

    async def bind(self) -> bool:
        """Hold a relay that is in and has room; False after a short wait if none has."""
        state = self.state
        if state is not None and state.fine():
            return True
        if state is not None:
            await self._leave()
        state = await self.relays.acquire()
        if state is None:
            return False
        self.state, self.conn = state, Connection(state.relay, self.relays.pool, state.health)
        return True

    async def ensure(self) -> bool:
        """An open session on a relay that is in: False (after a pause) if there is none."""
        conn, state = self.conn, self.state
        if conn is not None and state is not None and self._open(conn) and state.fine():
            return state.hourly.take()  # the common case, once per message
        if conn is not None and not self._open(conn) and len(self.relays.states) > 1:
            await self._leave()  # it reconnects anyway: pick the relay again
        if not await self.bind():
            return False
        assert self.conn is not None and self.state is not None
        if await self.conn.ensure():
            # Counted here, before the message: a relay whose hour is spent is left at the
            # next ensure() (bind), instead of holding a message for the rest of the hour.
            return self.state.hourly.take()
        self.relays.check(self.state)
        return False

    def _open(self, conn: Connection) -> bool:
        session = conn.session
        return session.connected and session.sent < self.relays.pool.messages_per_connection

    async def _leave(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        if self.state is not None:
            self.relays.release(self.state)
        self.state = self.conn = None

    @property
    def pipelining(self) -> bool:
        return self.conn is not None and self.conn.pipelining

    @property
    def bound(self) -> bool:
        """Whether it holds a relay (False: none had room when it last asked)."""
        return self.state is not None

    async def pace(self, email: str) -> None:
        """Wait for the recipient's domain limit, the send's rate and the relay's rate (its
        hourly budget was counted by ensure())."""
        relays, state = self.relays, self.state
        if not relays.paced:
            return
        await relays.domains.wait(email)
        await relays.limiter.wait()
        if state is not None:
            await state.rate.wait()

    async def send(self, job: Claimed, build: Build, intend: Intend,
                   after: tuple[Claimed, Build] | None = None) -> Outcome | None:
        """`pool.Connection.send` on the bound relay (after `ensure`), its strikes checked."""
        assert self.conn is not None and self.state is not None
        state = self.state
        outcome = await self.conn.send(job, build, intend, after)
        self.relays.check(state)
        self.relays.carried(state, outcome)
        return outcome

    async def close(self) -> None:
        await self._leave()
