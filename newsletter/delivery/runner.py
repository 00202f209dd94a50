"""The runner: one asyncio worker per process ties claim -> build -> SMTP -> journal together.

A worker has a feeder (claims batches into a local queue), a pool of connections (pool.py) and
a journal task that group-commits intents and outcomes (journal.py; queue.py says why that
order keeps every crash safe). crew.py runs one worker in this process or N in spawned ones.
SIGINT/SIGTERM stop claiming, let in-flight messages finish, record them, and hand unsent
claims back: a clean pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from newsletter.config import Settings
from newsletter.db import pgsend
from newsletter.db.models import utcnow
from newsletter.db.sender import sender_engine
from newsletter.delivery import queue as q
from newsletter.delivery import registry
from newsletter.delivery.errors import SendError
from newsletter.delivery.issues import status_of
from newsletter.delivery.journal import Journal, Progress
from newsletter.delivery.liveness import worker_name
from newsletter.delivery.pacing import Pacing
from newsletter.delivery.pool import Build, PoolSettings
from newsletter.delivery.relays import RelaySet, Slot

ContentFactory = Callable[[], Mapping[str, Build]]
log = logging.getLogger(__name__)
STOPPED = ("paused", "cancelled")  # an issue in these states is not sent any further
YOUNG = 20_000  # the collector's first threshold while a worker sends (see Worker.run)


@dataclass(frozen=True)
class RunConfig:
    """Everything a worker process needs; picklable, so spawned workers get it whole."""

    settings: Settings
    issue_id: int
    address_key: str  # hashes addresses to skip suppressions; never the rotating secret key
    content: ContentFactory
    pool: PoolSettings
    batch_size: int = 200
    lease: float = 300.0
    # Wait in-run for deferred retries due within this many s; 0: end the run as soon as
    # nothing can be claimed (the long-running worker, daemon.py, comes back on its own).
    retry_window: float = 900.0
    workers: int = 1
    watch_every: float = 0.5  # s between reads of the issue's status (pause, cancel)


@dataclass
class RunResult:
    """Counts of what this run did, and why it stopped early if it did."""

    counts: Counter[str] = field(default_factory=Counter)
    interrupted: bool = False
    error: str | None = None


class Worker:
    """One process's share of a send: a feeder, N connections and the journal."""

    def __init__(self, cfg: RunConfig, progress: Progress, stop: asyncio.Event,
                 pacing: Pacing | None = None) -> None:
        self.cfg = cfg
        self.stop = stop
        self.engine = sender_engine(cfg.settings.database_url, cfg.address_key)
        self.worker = worker_name()
        self.journal = Journal(self.engine, cfg.issue_id, cfg.lease, self.worker, progress)
        # `pacing`: the process's part of the per-second limits, given by a `newsletter worker`
        # (which counts itself among the workers and may run several sends). Without, this is
        # a `send` run's process, which counts itself while it runs (`_beat`).
        self.beats = pacing is None
        share = max(1, cfg.workers)
        self.pacing = pacing or Pacing.of(cfg.settings, cfg.pool.rate * share, share)
        # The relays, their limits and which are out (relays.py); per-relay counts go into the
        # journal's counts, so into RunResult.counts. run() and stopping() read `.fatal`.
        self.relays = RelaySet.for_worker(cfg.settings, cfg.pool, cfg.workers,
                                          self.journal.counts, self.engine, self.pacing)
        self.health = self.relays
        self.jobs: asyncio.Queue[q.Claimed | None] = asyncio.Queue()
        info = pgsend.conninfo(self.engine)  # PostgreSQL: claims on the loop, no thread
        self.claims = pgsend.Lane(info) if info is not None else None
        self.inflight = 0
        self.builds: Mapping[str, Build] = {}

    def stopping(self) -> bool:
        return self.stop.is_set() or self.health.fatal is not None

    async def run(self) -> RunResult:
        try:
            self.builds = self.cfg.content()
        except BaseException:  # nothing started: give the connections back
            self.journal.writer.close()
            self.engine.dispose()
            raise
        # Templates, the compiled issue and the libraries' objects live as long as the run:
        # frozen, the collector stops scanning them again and again (it took a fifth of a
        # worker's CPU time, mostly while claims decoded their rows).
        gc.collect()
        gc.freeze()
        await self.relays.join()  # the relays out and the hourly budgets, before any connection
        # The young generation is collected whenever 700 more tracked objects are alive than
        # at the last collection: each claimed batch (a few objects per row) and the messages
        # in flight set it off again and again, for nothing, as a run makes almost no cycles.
        thresholds = gc.get_threshold()
        gc.set_threshold(YOUNG, *thresholds[1:])
        journal_task = asyncio.create_task(self.journal.run())
        helpers = [asyncio.create_task(self._watch()),
                   asyncio.create_task(self.relays.keep_in_step())]
        if self.beats:
            helpers.append(asyncio.create_task(self._beat()))
        tasks = [asyncio.create_task(self._feed())]
        tasks += [asyncio.create_task(self._connection()) for _ in range(self.cfg.pool.connections)]
        error: BaseException | None = None
        try:
            waiting: set[asyncio.Task[None]] = {journal_task, *tasks}
            while error is None and not all(t.done() for t in tasks):
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                error = next((t.exception() for t in done if t.exception()), None)
        finally:
            interrupted = self.stop.is_set()
            if error is not None:
                self.stop.set()
            for task in (*tasks, *helpers):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, *helpers, return_exceptions=True)
            await self.relays.leave()
            self._release_waiting()
            self.journal.close()
            if not journal_task.done():
                await journal_task
            if self.claims is not None:
                self.claims.close()
            self.engine.dispose()
            if thresholds[0] != YOUNG:  # else another run in this process set it and resets it
                gc.set_threshold(*thresholds)
            gc.unfreeze()  # a send run in a longer-lived process gives its objects back
        if error is not None:
            raise error
        result = RunResult(counts=self.journal.counts, interrupted=interrupted)
        if self.health.fatal is not None:
            result.error = str(self.health.fatal)
        return result

    async def _watch(self) -> None:
        """Stop claiming once the issue is no longer sending (paused or cancelled anywhere):
        the messages in flight finish and are recorded, the other claims go back."""
        while not self.stop.is_set():
            status = await asyncio.to_thread(status_of, self.engine, self.cfg.issue_id)
            if status in STOPPED:
                self.stop.set()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=self.cfg.watch_every)

    async def _beat(self) -> None:
        """A `send` run's process among the live workers (registry.py), about every second:
        the `newsletter worker`s beside it leave it its part of the per-second limits, and it
        takes 1/n of them, n never fewer than the send's own processes (pacing.py)."""
        pulse = registry.Pulse()
        try:
            while True:
                sent = self.journal.counts["sent"]
                try:
                    live = await asyncio.to_thread(registry.heartbeat, self.engine, self.worker,
                                                   self.cfg.issue_id, sent, pulse.beat(sent))
                    self.pacing.share(max(self.cfg.workers, live))
                except (SQLAlchemyError, OSError) as exc:  # the parts stay as they were
                    log.warning("send: no heartbeat (%s)", str(exc).splitlines()[0])
                await asyncio.sleep(registry.BEAT_EVERY)
        finally:
            with contextlib.suppress(SQLAlchemyError, OSError):
                await asyncio.to_thread(registry.deregister, self.engine, self.worker)

    def _release_waiting(self) -> None:
        ids = []
        while not self.jobs.empty():
            job = self.jobs.get_nowait()
            if job is not None:
                ids.append(job.delivery_id)
        if ids:
            self.journal.release(ids)

    async def _feed(self) -> None:
        cfg = self.cfg
        low = max(2 * cfg.pool.connections, cfg.batch_size // 2)
        try:
            while not self.stopping():
                if self.jobs.qsize() >= low:
                    await asyncio.sleep(0.002)
                    continue
                settled = self.journal.settled
                rows = await self._claim()
                for row in rows:
                    self.jobs.put_nowait(row)
                if rows:
                    continue
                # A deferral still being committed is not in the database yet: wait for it,
                # or next_due() would miss it and end the run before its retry. A row put back
                # (a 421) while the claim ran was missed by it: claim again.
                if (self.inflight or not self.jobs.empty() or self.journal.pending
                        or self.journal.settled != settled):
                    await asyncio.sleep(0.02)
                    continue
                if cfg.retry_window <= 0:
                    break
                due = await asyncio.to_thread(q.next_due, self.engine, cfg.issue_id)
                if due is None:
                    break
                wait = (due - utcnow()).total_seconds()
                if wait > cfg.retry_window:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=max(wait, 0.01))
        finally:
            for _ in range(cfg.pool.connections):
                self.jobs.put_nowait(None)

    async def _claim(self) -> list[q.Claimed]:
        cfg = self.cfg
        if self.claims is not None:
            return await q.claim_fast(self.claims, cfg.issue_id, self.worker, cfg.batch_size,
                                      cfg.lease, cfg.address_key)
        return await asyncio.to_thread(q.claim, self.engine, cfg.issue_id, self.worker,
                                       cfg.batch_size, cfg.lease, cfg.address_key)

    async def _connection(self) -> None:
        conn = self.relays.slot()
        after: q.Claimed | None = None

        async def take() -> q.Claimed | None:
            while not (self.stopping() or await conn.bind()):  # a relay with room, first
                pass
            return await self.jobs.get()

        try:
            job = await take()
            while job is not None:
                self.inflight += 1  # from here the feeder must not think the run is over
                try:
                    after = self._next_waiting(conn)
                    await self._deliver(conn, job, after)
                finally:
                    self.inflight -= 1
                job, after = after if after is not None else await take(), None
        finally:
            if after is not None:  # an error ended the loop: hand the next job back
                self.journal.release([after.delivery_id])
            await conn.close()

    def _next_waiting(self, conn: Slot) -> q.Claimed | None:
        """The job this connection sends next, if one is waiting and the relay pipelines."""
        if not conn.pipelining or self.jobs.empty() or self.stopping():
            return None
        job = self.jobs.get_nowait()
        if job is None:  # the feeder is done: leave the signal for this connection's next get
            self.jobs.put_nowait(None)
        return job

    async def _deliver(self, conn: Slot, job: q.Claimed,
                       after: q.Claimed | None = None) -> None:
        while not self.stopping() and not await conn.ensure():
            if not conn.bound:  # its relay is out and no other has room: another connection
                self.jobs.put_nowait(job)  # sends the message
                return
        if self.stopping():
            self.journal.release([job.delivery_id])
            return
        build = self.builds.get(job.language)
        if build is None:
            self.journal.release([job.delivery_id])
            raise SendError(f"the issue has no {job.language} edition any more, but "
                            f"deliveries in {job.language} are queued")
        await conn.pace(job.email)
        next_build = self.builds.get(after.language) if after is not None else None
        outcome = await conn.send(job, build, self.journal.intend,
                                  (after, next_build) if after and next_build else None)
        if outcome is not None:
            self.journal.record(outcome)


def event_loop_runner() -> Callable[[Any], Any]:
    """uvloop when installed (about 1.5x faster SMTP on loopback), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        return asyncio.run
    return uvloop.run
