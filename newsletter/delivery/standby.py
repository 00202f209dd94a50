"""A spawned send worker from its start to its run (crew.Crew starts it ahead of the run).

This module imports almost nothing, so the worker takes SIGINT and SIGTERM as "stop" before
its slow imports: from then on a Ctrl-C in the terminal (the parent may still be planning) is
recorded, never printed as a traceback, and a worker given its run after one starts paused.
Then it imports the sender, loads what every run's messages need (content.prepare) and waits
for its RunConfig on its pipe (which then carries its reports back); the parent closing the
pipe instead (the send did not start) ends it.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import threading
from typing import Any

from newsletter.config import Settings


def _die_with_parent() -> None:
    """Linux: a worker process gets SIGKILL when the parent dies, like a crash of the whole."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def main(settings: Settings, signers: int, link: Any) -> None:
    """Entry point of a spawned worker process."""
    _die_with_parent()
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: stopped.set())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by Crew
    # The imports make objects by the hundred thousand and almost no cycles: without the
    # collector's passes over them they cost ~10 % less; what they made is then frozen, as
    # Worker.run would do.
    gc.disable()
    from newsletter.delivery import content, crew, runner
    from newsletter.logs import use_log_format_from_environment

    use_log_format_from_environment()  # --log-format json reaches the workers too
    content.prepare(settings)
    runner.event_loop_runner()  # imports uvloop now
    gc.collect()
    gc.freeze()
    gc.enable()
    with crew.start_signers(settings, signers) or contextlib.nullcontext():
        try:
            cfg = link.recv()
        except EOFError:  # the send was refused or failed before it started
            return
        crew.work(cfg, link, stopped)
