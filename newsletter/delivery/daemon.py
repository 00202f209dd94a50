"""`newsletter worker`: a long-running sender for every issue, on any number of hosts.

One asyncio loop per process. About every second (`tick`) it

1. refreshes its row in `workers` (registry.py): the issue it is on, messages sent, its rate;
   and counts the live workers: its runs and its outbox take that part of each per-second
   limit (`[smtp] rate`, the relays' `rate`, `[smtp.domain_limits]`: pacing.py);
2. starts the scheduled issues whose time has come (issues.promote_due);
3. for each issue that is sending, settles what dead workers left (queue.recover), and starts
   a run on it when a claim would take a row (queue.claimable). A run is runner.Worker with a
   RunConfig for that issue and `retry_window=0`: it claims batches under a lease (PostgreSQL:
   FOR UPDATE SKIP LOCKED, so the workers of all hosts take disjoint batches), stops claiming
   within `watch_every` of a pause or cancel, and ends when nothing can be claimed; whoever
   settles the last delivery sets the issue sent (issues.finish);
4. sends the system mails that are due (outbox.deliver_outbox): the outbox is a second kind of
   queue, claimed under the same `[smtp] lease` and sent over the same relays (mailrun.MailRun,
   kept for the worker's life, so a relay's cool-down and hourly budget hold across ticks).

With --build-archive, the worker whose issues.settle moved an issue to sent rebuilds the
archive (`archive`, the archive facade's build): one line logged, a failure one warning. One
build at a time in a folder (archive/buildlock.py): a worker that finds another building there
skips, and builds at its next tick instead. The
live workers also delete the rows of workers silent for long (registry.prune_now_and_then).

SIGTERM or SIGINT: stop claiming, let the messages in flight finish and be recorded, hand the
other claims back, delete the row, exit 0. The worker needs only the database URL, the keys,
SMTP and DKIM settings: each issue's editions and sender identity come from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from newsletter.audience.lists import ListInfo, list_by_slug
from newsletter.config import Settings
from newsletter.db.tables import LISTS
from newsletter.delivery import content, registry
from newsletter.delivery import queue as q
from newsletter.delivery.concurrency import pool_settings
from newsletter.delivery.errors import SendError
from newsletter.delivery.issues import (
    IssueRow,
    promote_due,
    sending_issues,
    settle,
    skip_cancelled,
)
from newsletter.delivery.liveness import worker_name
from newsletter.delivery.mailrun import MailRun
from newsletter.delivery.pacing import Pacing
from newsletter.delivery.runner import RunConfig, Worker

log = logging.getLogger(__name__)

# (what: an issue's slug, or "outbox"; counts by outcome): every count a worker makes goes
# through this one callback (the progress line, metrics).
Observer = Callable[[str, Mapping[str, int]], None]
RECOVER_EVERY = 5.0  # s between two looks for what dead workers left on an issue
REST_AFTER_FAILURE = 30.0  # s before a run that failed (relay down...) is started again


class Build(Protocol):
    """What the archive's build reports (archive/builder.BuildReport)."""

    def describe(self) -> str: ...


# The archive build, run by the worker that sets an issue sent; None: another process is
# building in the folder, try again later.
Archive = Callable[[], Build | None]


@dataclass(frozen=True)
class WorkerOptions:
    """The flags of `newsletter worker`; None takes the [smtp] setting."""

    lease: float | None = None
    connections: int | None = None
    batch_size: int | None = None
    until_idle: bool = False
    tick: float = 1.0
    build_archive: bool = False
    signers: int | None = None  # DKIM signer processes; None: concurrency.default_signers


@dataclass
class WorkerReport:
    """What this worker did before it stopped."""

    name: str
    counts: Counter[str] = field(default_factory=Counter)
    outbox: Counter[str] = field(default_factory=Counter)
    issues: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    archive_builds: int = 0


class Daemon:
    """One `newsletter worker` process: the tick loop and its runs, one per sending issue."""

    def __init__(self, settings: Settings, engine: Engine, sender: Engine, address_key: str,
                 options: WorkerOptions, observer: Observer | None = None,
                 archive: Archive | None = None) -> None:
        self.settings, self.engine, self.sender = settings, engine, sender
        self.address_key, self.options, self.observer = address_key, options, observer
        self.archive, self.building = archive, asyncio.Lock()
        self.archive_due: str | None = None  # the issue whose build was skipped: a lock held
        self.pruned_at: datetime | None = None  # when this worker last pruned silent rows
        self.report = WorkerReport(worker_name())
        self.stop = asyncio.Event()
        self.runs: dict[int, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self.recovered: dict[int, float] = {}
        self.resting: dict[int, float] = {}  # issue -> when to try again after a failed run
        self.outbox: asyncio.Task[int] | None = None
        self.mails: MailRun | None = None  # the outbox's relays, made on its first pass
        # This process's part of the per-second limits, for all its runs and its outbox
        self.pacing = Pacing.of(settings, pool_settings(settings).rate)
        self.pulse = registry.Pulse()
        self.on_issue: int | None = None

    def halt(self) -> None:
        """Stop claiming everywhere; the runs finish their messages in flight."""
        self.stop.set()
        for _task, stop in self.runs.values():
            stop.set()

    async def run(self) -> WorkerReport:
        await asyncio.to_thread(registry.register, self.engine, self.report.name)
        try:
            while not self.stop.is_set():
                busy = await self._tick_safely()
                if self.options.until_idle and not busy:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=self.options.tick)
        finally:
            self.halt()
            await self._wind_down()
            await asyncio.to_thread(registry.deregister, self.engine, self.report.name)
        return self.report

    async def _wind_down(self) -> None:
        waiting: list[asyncio.Task[Any]] = [task for task, _ in self.runs.values()]
        if self.outbox is not None:
            waiting.append(self.outbox)
        await asyncio.gather(*waiting, return_exceptions=True)
        if self.mails is not None:
            await self.mails.leave()

    async def _tick_safely(self) -> bool:
        """A tick; a database that does not answer is waited for, not fatal (--until-idle:
        it is, as one line)."""
        try:
            return await self._tick()
        except (SQLAlchemyError, OSError) as exc:
            if self.options.until_idle:
                raise
            log.warning("worker: %s; trying again", str(exc).splitlines()[0])
            return True

    async def _tick(self) -> bool:
        """One round; False when nothing was due (for --until-idle)."""
        await self._heartbeat()
        await asyncio.to_thread(promote_due, self.sender)
        await asyncio.to_thread(skip_cancelled, self.sender, None, 0.0)
        started = False
        now = time.monotonic()
        for issue in await asyncio.to_thread(sending_issues, self.sender):
            if (issue.id not in self.runs and not self.stop.is_set()
                    and self.resting.get(issue.id, 0.0) <= now):
                started |= await self._maybe_start(issue)
        mails = await self._outbox_pass()
        if self.archive_due is not None:
            await self._build(self.archive_due)
        return started or bool(self.runs) or mails or self.archive_due is not None

    async def _outbox_pass(self) -> bool:
        """Start a pass over the outbox unless one runs; with --until-idle wait for it and
        say whether it sent anything."""
        if self.outbox is not None and not self.outbox.done():
            return True
        self.outbox = asyncio.create_task(self._drain_outbox())
        return await self.outbox > 0 if self.options.until_idle else True

    async def _maybe_start(self, issue: IssueRow) -> bool:
        now = time.monotonic()
        if now - self.recovered.get(issue.id, -RECOVER_EVERY) >= RECOVER_EVERY:
            self.recovered[issue.id] = now
            await asyncio.to_thread(q.recover, self.sender, issue.id)
        if not await asyncio.to_thread(q.claimable, self.sender, issue.id):
            await self._finish(issue)
            return False
        stop = asyncio.Event()
        task = asyncio.create_task(self._run_issue(issue, stop))
        self.runs[issue.id] = (task, stop)
        self.on_issue = issue.id
        return True

    def _config(self, issue: IssueRow, mailing_list: ListInfo) -> RunConfig:
        s, o = self.settings.smtp, self.options
        return RunConfig(
            settings=self.settings, issue_id=issue.id, address_key=self.address_key,
            content=functools.partial(content.issue_content, self.settings, issue.id,
                                      issue.slug, mailing_list),
            pool=pool_settings(self.settings, o.connections),
            batch_size=o.batch_size or s.batch_size, lease=o.lease or s.lease,
            retry_window=0.0)

    async def _run_issue(self, issue: IssueRow, stop: asyncio.Event) -> None:
        try:
            mailing_list = await asyncio.to_thread(_list_of, self.sender, issue.list_id)
            progress = functools.partial(self._count, issue.slug)
            result = await Worker(self._config(issue, mailing_list), progress, stop,
                                  self.pacing).run()
            if result.error:
                self._failed(issue, result.error)
            await self._finish(issue)
        except Exception as exc:  # one issue's trouble must not stop the others
            self._failed(issue, str(exc))
        finally:
            del self.runs[issue.id]
            if self.on_issue == issue.id:
                self.on_issue = next(iter(self.runs), None)

    async def _finish(self, issue: IssueRow) -> None:
        """Set the issue sent when nothing is left; the worker that did rebuilds the archive."""
        _status, moved = await asyncio.to_thread(settle, self.sender, issue.id)
        if moved and self.archive is not None:
            await self._build(issue.slug)

    async def _build(self, slug: str) -> None:
        async with self.building:  # one build at a time in this process
            self.archive_due = None
            if self.archive is not None:
                await asyncio.to_thread(self._build_archive, slug, self.archive)

    def _build_archive(self, slug: str, archive: Archive) -> None:
        try:
            report = archive()
        except Exception as exc:  # the mails are out: a site problem must not stop sending
            log.warning("archive not rebuilt after issue %s was sent: %s; run `newsletter "
                        "archive build` where the workspace is", slug, str(exc).splitlines()[0])
            return
        if report is None:
            self.archive_due = slug
            log.info("archive build after issue %s was sent: another process is building in "
                     "the folder; trying again at the next tick", slug)
            return
        self.report.archive_builds += 1
        log.info("archive rebuilt after issue %s was sent: %s", slug, report.describe())

    def _failed(self, issue: IssueRow, error: str) -> None:
        line = f"issue {issue.slug}: {error}"
        log.error("%s (trying again in %.0f s)", line, REST_AFTER_FAILURE)
        self.resting[issue.id] = time.monotonic() + REST_AFTER_FAILURE
        self.report.errors.append(line)
        if self.options.until_idle:
            self.halt()

    def _count(self, what: str, delta: Mapping[str, int]) -> None:
        (self.report.outbox if what == "outbox" else self.report.counts).update(delta)
        if what != "outbox":
            self.report.issues.add(what)
        if self.observer is not None:
            self.observer(what, delta)

    async def _drain_outbox(self) -> int:
        from newsletter.outbox import deliver_outbox

        try:
            self.mails = self.mails or MailRun(self.settings, self.pacing)
            report = await deliver_outbox(self.settings, self.engine, mails=self.mails)
        except Exception as exc:  # a relay or database hiccup: the next tick tries again
            log.warning("outbox: %s", exc)
            return 0
        if report.total:
            self._count("outbox", {"sent": report.sent, "deferred": report.deferred,
                                   "failed": report.failed})
        return report.total

    async def _heartbeat(self) -> None:
        sent = self.report.counts["sent"]
        live = await asyncio.to_thread(registry.heartbeat, self.engine, self.report.name,
                                       self.on_issue, sent, self.pulse.beat(sent))
        self.pacing.share(live)
        self.pruned_at = await asyncio.to_thread(registry.prune_now_and_then, self.engine,
                                                 self.pruned_at)


def _list_of(engine: Engine, list_id: int) -> ListInfo:
    with engine.connect() as conn:
        slug = conn.scalar(select(LISTS.c.slug).where(LISTS.c.id == list_id))
        found = list_by_slug(conn, str(slug))
    if found is None:
        raise SendError(f"the issue's list (id {list_id}) no longer exists")
    return found


async def _serve(daemon: Daemon) -> WorkerReport:
    loop = asyncio.get_running_loop()
    handled = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, daemon.halt)
            handled.append(sig)
    try:
        return await daemon.run()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


def serve(settings: Settings, engine: Engine, sender: Engine, address_key: str,
          options: WorkerOptions, observer: Observer | None = None,
          archive: Archive | None = None) -> WorkerReport:
    """Run a worker in this process until SIGTERM/SIGINT (or, --until-idle, nothing is due).

    When [dkim] signs with OpenSSL's RSA, the worker's runs have their signatures made by
    signer processes started for the worker's life (signers.py), as `send` does."""
    from newsletter.delivery.concurrency import default_signers
    from newsletter.delivery.crew import start_signers
    from newsletter.delivery.runner import event_loop_runner

    daemon = Daemon(settings, engine, sender, address_key, options, observer, archive)
    count = options.signers
    signers = start_signers(settings, default_signers(os.cpu_count()) if count is None else count)
    if signers is not None:
        log.info("DKIM signatures by %d signer process(es)", len(signers.live))
    try:
        return event_loop_runner()(_serve(daemon))  # type: ignore[no-any-return]
    finally:
        if signers is not None:
            signers.close()
