"""Who holds a lease, and whether that worker process still runs.

A worker is named host:pid:tSTART:tag, where START is the process's start time in clock ticks
since boot (/proc/<pid>/stat, field 22) and the random tag tells apart two runs in one process.
A later run on the same host takes a dead worker's claims at once instead of waiting out the
lease; `os.kill(pid, 0)` alone cannot tell, because it succeeds on a zombie (a killed worker
nobody reaped) and on an unrelated process that got the pid again. So a pid counts as alive
only when it exists, is not a zombie, and started when the worker did.
"""

from __future__ import annotations

import os
import socket

PROC = "/proc"


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc, or None when there is no such process."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as fh:
            text = fh.read().decode("ascii", "replace")
    except FileNotFoundError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], fields[19]


def worker_name() -> str:
    """host:pid:tSTART:tag for a worker in this process (host:pid:tag where there is no /proc)."""
    pid = os.getpid()
    try:
        stat = _stat(pid)
    except OSError:
        stat = None
    start = f"t{stat[1]}:" if stat else ""
    return f"{host_name()}:{pid}:{start}{os.urandom(3).hex()}"


def host_name() -> str:
    """This host's name, cut so that a whole worker name fits the 64-character column."""
    return socket.gethostname()[:32]


def worker_alive(worker: str) -> bool:
    """False only when the worker surely died: its pid here is gone, a zombie, or reused."""
    host, _, rest = worker.partition(":")
    pid_text, _, tags = rest.partition(":")
    start = tags.partition(":")[0]
    if host != host_name() or not pid_text.isdigit():
        return True  # another host: wait for its lease to expire
    pid = int(pid_text)
    try:
        stat = _stat(pid)
    except OSError:  # no /proc here: the pid's existence is all we can check
        return _pid_exists(pid)
    if stat is None:
        return False
    state, started = stat
    if state in ("Z", "X"):
        return False
    return not start.startswith("t") or start[1:] == started


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
