"""Where a send's workers run: one in this process, or N spawned processes (a `Crew`, which
`send` starts before it plans, so their start-up overlaps the planning; standby.py is their
entry point). Progress comes back through one callback, coalesced; SIGINT and SIGTERM pause
the run (runner.Worker hands its claims back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Mapping
from multiprocessing import connection, resource_tracker
from typing import TYPE_CHECKING, Any

from newsletter.config import Settings
from newsletter.delivery.errors import RelayUnavailable, SendError
from newsletter.delivery.journal import Progress
from newsletter.delivery.runner import RunConfig, RunResult, Worker, event_loop_runner
from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.delivery.signers import Signers

log = logging.getLogger(__name__)
PROGRESS_EVERY = 0.2  # s between progress reports (a bar redrawn 5 times a second is enough)


async def run_here(cfg: RunConfig, progress: Progress,
                   stopped: threading.Event | None = None) -> RunResult:
    """One worker in this process; `stopped`: a SIGINT or SIGTERM came before it started."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if _main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    if stopped is not None and stopped.is_set():
        stop.set()
    report = Coalesced(progress)
    try:
        return await Worker(cfg, report, stop).run()
    finally:
        report.flush()
        for sig in handled:
            loop.remove_signal_handler(sig)


class Coalesced:
    """Progress passed on at most every PROGRESS_EVERY seconds, the counts summed meanwhile:
    the journal reports each commit (several hundred a second), and the progress bar's
    update cost as much as the commit's own Python work."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.pending: Counter[str] = Counter()
        self.last = time.monotonic()

    def __call__(self, delta: Mapping[str, int]) -> None:
        self.pending.update(delta)
        now = time.monotonic()
        if now - self.last > PROGRESS_EVERY:
            self.last = now
            self.flush()

    def flush(self) -> None:
        if self.pending:
            pending, self.pending = self.pending, Counter()
            self.progress(dict(pending))


def work(cfg: RunConfig, link: Any, stopped: threading.Event) -> None:
    """A spawned worker's run (standby.main calls it), its progress and end sent on `link`."""
    def progress(delta: Mapping[str, int]) -> None:  # coalesced by run_here
        link.send(("progress", dict(delta)))

    try:
        result = event_loop_runner()(run_here(cfg, progress, stopped))
    except Exception as exc:  # reported by the parent as one line
        link.send(("failed", f"{exc}" if isinstance(exc, SendError) else repr(exc)))
        return
    link.send(("done", (dict(result.counts), result.interrupted, result.error)))


def run_workers(cfg: RunConfig, progress: Progress, crew: Crew | None = None) -> RunResult:
    """Run the send with cfg.workers processes (1: in this process), in `crew` if it was
    started ahead; raise on relay failure."""
    if cfg.workers <= 1:
        result = event_loop_runner()(run_here(cfg, progress))
    elif crew is not None and crew.size == cfg.workers:
        result = crew.run(cfg, progress)
    else:
        with Crew(cfg.settings, cfg.workers) as own:
            result = own.run(cfg, progress)
    if result.error:
        raise RelayUnavailable(result.error)
    return result


class Crew:
    """Worker processes spawned ahead of their run: each imports the sender and loads the DKIM
    key (standby.py) while this process plans and enqueues, then waits for the run's RunConfig.

    A spawned worker's start-up costs about 0.8 s of CPU; started here, most of it overlaps the
    planning instead of delaying the first message. `close` (the end of a `with`) ends workers
    that were never given a run (a send refused or failed before it started) at once.
    """

    def __init__(self, settings: Settings, size: int, signers: int = 0) -> None:
        from newsletter.delivery import standby

        ctx = multiprocessing.get_context("spawn")
        self.size = size
        self.links: list[Any] = []  # one pipe per worker: its run in, its reports out
        self.procs: list[Any] = []
        self.started = False
        self.signers = None  # a send in this process: its DKIM signer processes (signers.py)
        if size <= 1:
            self.signers = start_signers(settings, signers)
            return
        # Started with SIGINT blocked (the mask is inherited across exec) until standby.main
        # has its handler: a Ctrl-C while a worker imports must not print its traceback. Here
        # it is held, not lost: it is raised when the mask is restored, and ends the crew.
        # The mask is the main thread's own: where another thread takes the signal, the
        # handler below keeps it for later, so no KeyboardInterrupt cuts a start in half.
        held = _main_thread()
        if held:
            # multiprocessing starts its resource tracker on the first spawn and unblocks
            # SIGINT when it does: started first, it leaves the mask alone.
            resource_tracker.ensure_running()
            caught: list[int] = []
            previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            try:
                self._spawn(ctx, (settings, signers), standby.main)
            finally:
                if held:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
                    signal.signal(signal.SIGINT, previous)
                    if caught:  # to the handler that was there: KeyboardInterrupt, or ignored
                        signal.raise_signal(signal.SIGINT)
        except BaseException:
            self.close()
            raise

    def _spawn(self, ctx: Any, args: tuple[Any, ...], main: Any) -> None:
        for _ in range(self.size):
            link, theirs = ctx.Pipe()
            proc = ctx.Process(target=main, args=(*args, theirs), daemon=True)
            # Kept before it starts: where another thread takes the Ctrl-C, the mask does not
            # hold it, and KeyboardInterrupt can come right after start(); close() ends it.
            self.links.append(link)
            self.procs.append(proc)
            proc.start()
            theirs.close()  # the worker's end is in the worker now: its exit closes it

    def __enter__(self) -> Crew:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def run(self, cfg: RunConfig, progress: Progress) -> RunResult:
        """Give the workers their run and wait for them; SendError if one failed."""
        result = RunResult()
        failures: list[str] = []
        procs = self.procs

        def pause(_signum: int, _frame: Any) -> None:
            # The workers got the same SIGINT (same process group) and are pausing; a SIGTERM
            # sent to the parent alone is passed on.
            result.interrupted = True
            if _signum == signal.SIGTERM:
                for proc in procs:
                    if proc.pid is not None and proc.is_alive():
                        os.kill(proc.pid, signal.SIGTERM)

        previous = {sig: signal.signal(sig, pause) for sig in (signal.SIGINT, signal.SIGTERM)
                    if _main_thread()}
        try:
            self.started = True
            for link in self.links:
                with contextlib.suppress(OSError):  # died meanwhile: _collect sees it gone
                    link.send(cfg)
            _collect(self.links, procs, result, failures, progress)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        for proc in procs:
            proc.join(timeout=10)
        if failures:
            raise SendError(failures[0])
        return result

    def close(self) -> None:
        """End the workers that were given no run (they hold nothing yet), reap them all, and
        the signer processes."""
        if self.signers is not None:
            self.signers.close()
        for link in self.links:
            link.close()
        for proc in self.procs:
            if proc.pid is None:  # interrupted before it started
                continue
            if not self.started:
                proc.kill()
            proc.join(timeout=10)


def start_signers(settings: Settings, count: int) -> Signers | None:
    """`count` DKIM signer processes for a sender process (signers.py), None when nothing is
    signed with OpenSSL's RSA; an unusable key is reported by the run, as without them, and
    processes that cannot be started leave the signing to the sender."""
    from newsletter.delivery.dkim import load_dkim
    from newsletter.delivery.signers import Signers

    if count < 1:
        return None
    try:
        return Signers.start(load_dkim(settings), count)
    except NewsletterError:
        return None
    except OSError as exc:
        log.warning("no DKIM signer process (%s): the sender signs", exc)
        return None


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _collect(links: list[Any], procs: list[Any], result: RunResult, failures: list[str],
             progress: Progress) -> None:
    """Read the workers' reports until each has said it is done or failed, or is gone."""
    waiting = list(links)
    while waiting:
        ready: list[Any] = connection.wait(waiting, timeout=0.2)
        if not ready:
            # Poll every worker: is_alive() reaps one that exited (waitpid), so a killed
            # worker does not linger as a zombie while the others run.
            if not any([p.is_alive() for p in procs]):
                break
            continue
        for link in ready:
            try:
                kind, payload = link.recv()
            except (EOFError, OSError):  # gone without a word (killed)
                waiting.remove(link)
                continue
            if kind == "progress":
                if payload:
                    progress(payload)
                continue
            waiting.remove(link)
            if kind == "done":
                counts, interrupted, error = payload
                result.counts.update(counts)
                result.interrupted |= interrupted
                result.error = result.error or error
            else:
                failures.append(payload)
