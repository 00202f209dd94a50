"""A dead worker's claims are taken over at once, even when it lingers as a zombie or its pid
is reused; real processes throughout."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.models import Delivery, Issue
from newsletter.delivery.liveness import worker_alive, worker_name
from tests.conftest import clean_env
from tests.delivery.sender_fixtures import configure, deliveries, seed, write_issue

PR_SET_CHILD_SUBREAPER = 36
WORKERS, CONNECTIONS = 2, 2


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def _name(pid: int, start: str) -> str:
    return f"{socket.gethostname()}:{pid}:t{start}:abc123"


def test_a_worker_is_alive_only_while_its_own_process_runs():
    proc = subprocess.Popen(["sleep", "60"])
    start = _stat(proc.pid)[19]
    assert worker_alive(_name(proc.pid, start))
    assert worker_alive(worker_name())
    assert worker_name() != worker_name()  # two runs in one process hold separate leases
    # The same pid with another start time is a new process that reused the pid.
    assert not worker_alive(_name(proc.pid, str(int(start) + 1)))
    proc.kill()
    while _stat(proc.pid)[0] != "Z":
        time.sleep(0.01)
    assert not worker_alive(_name(proc.pid, start)), "a zombie is not a live worker"
    proc.wait()
    assert not worker_alive(_name(proc.pid, start))
    # Another host's worker is left to its lease.
    assert worker_alive(f"elsewhere.example:{proc.pid}:t{start}:abc123")
    # A name from before start times were recorded: only the pid can be checked.
    assert not worker_alive(f"{socket.gethostname()}:{proc.pid}:abc123")


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()]


def _leased(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(Delivery.worker.is_not(None))).scalar_one()


def _sender(workspace: Path) -> subprocess.Popen[bytes]:
    env = clean_env()
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "-w", str(workspace), "send", "nov", "--yes",
         "--workers", str(WORKERS)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


@contextlib.contextmanager
def _subreaper():
    """Orphaned workers come to this process, which does not reap them: they stay zombies,
    as under a container init that never calls wait()."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0)


@pytest.mark.slow
def test_resume_after_sigkill_takes_over_zombie_workers_claims_at_once(
        workspace, db_url, smtp_server):
    # Slow sending (rate-limited) so the kill lands while both workers hold leased batches;
    # the lease is long and the in-run retry window short, so waiting out a lease would show.
    configure(workspace, db_url, smtp_server.port, connections=CONNECTIONS, rate=60.0,
              lease=300.0, retry_window=2.0)
    write_issue(workspace)
    emails = seed(workspace, ["en", "fr", "es"] * 200)
    engine = make_engine(load_settings(workspace).database_url)
    with _subreaper():
        proc = _sender(workspace)
        workers: list[int] = []
        deadline = time.monotonic() + 60
        while (len(workers) < WORKERS or _leased(engine) < 100 or len(smtp_server.messages) < 20):
            assert time.monotonic() < deadline and proc.poll() is None, "send never got going"
            workers = _children(proc.pid)
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for pid in workers:
            while Path(f"/proc/{pid}").exists() and _stat(pid)[0] != "Z":
                time.sleep(0.01)
        try:
            assert _leased(engine) >= 100
            assert all(_stat(pid)[0] == "Z" for pid in workers)  # zombies, not reaped
            # The rate only had to keep the first run sending until the kill: the resumed run
            # sends the rest unpaced (10 s less); the long lease still shows if it waits.
            configure(workspace, db_url, smtp_server.port, connections=CONNECTIONS,
                      lease=300.0, retry_window=2.0)
            started = time.monotonic()
            again = _sender(workspace)
            out, _ = again.communicate(timeout=120)
            took = time.monotonic() - started
        finally:
            for pid in workers:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
    assert again.returncode == 0, out.decode()
    with engine.connect() as conn:
        status = conn.execute(select(Issue.status).where(Issue.slug == "nov")).scalar_one()
    engine.dispose()
    assert status == "sent", out.decode()
    print(f"resumed run: {took:.1f} s")
    assert took < 60, "the resumed run waited for the dead workers' leases"
    rows = deliveries(workspace)
    copies = Counter(rcpts[0] for _s, rcpts, _d in smtp_server.messages)
    unknown = {e for e, (st, _l, _r) in rows.items() if st == "unknown"}
    assert {st for st, _l, _r in rows.values()} <= {"sent", "unknown"}
    assert len(unknown) <= WORKERS * CONNECTIONS
    for email in emails:
        assert copies[email] == 1 or email in unknown and copies[email] == 0, email


@pytest.fixture(autouse=True)
def _linux_only():
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc")
