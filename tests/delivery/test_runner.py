"""Worker processes and Ctrl-C: several workers share the queue; SIGINT pauses, send resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.conftest import clean_env
from tests.delivery.sender_fixtures import (
    configure,
    deliveries,
    processes,
    seed,
    until,
    write_issue,
)


def _sender(workspace, *extra: str, start_new_session: bool = False, slug: str = "nov",
            yes: bool = True) -> subprocess.Popen[bytes]:
    env = clean_env()
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "-w", str(workspace), "send", slug,
         *(["--yes"] if yes else []), *extra], env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=start_new_session)


def _workers_of(session: int) -> list[int]:
    """The spawned worker processes (multiprocessing's spawn_main) alive in a session."""
    return processes(b"spawn_main", session=session)


@pytest.mark.slow
def test_two_worker_processes_share_the_queue_and_mail_everyone_once(
        run, workspace, db_url, smtp_server):
    configure(workspace, db_url, smtp_server.port, connections=2, batch_size=20)
    write_issue(workspace)
    emails = seed(workspace, ["en", "fr", "es"] * 100)
    result = run.json("send", "nov", "--yes", "--workers", "2")
    assert result["sent"] == 300 and result["status"] == "sent"
    assert Counter(r[0] for _s, r, _d in smtp_server.messages) == Counter(
        {e: 1 for e in emails})


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_pauses_cleanly_and_send_again_resumes(workspace, db_url, smtp_server, workers):
    configure(workspace, db_url, smtp_server.port, connections=2, rate=200.0)
    write_issue(workspace)
    emails = seed(workspace, ["en", "fr"] * 500)
    proc = _sender(workspace, "--workers", workers, start_new_session=True)
    assert smtp_server.wait_for(50, timeout=60)
    os.killpg(proc.pid, signal.SIGINT)  # like Ctrl-C in a terminal: the whole process group
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out.decode()
    assert b"Paused" in out
    rows = deliveries(workspace)
    statuses = Counter(s for s, _l, _r in rows.values())
    assert statuses["sending"] == 0 and statuses["unknown"] == 0  # in-flight finished
    assert statuses["sent"] == len(smtp_server.messages) < len(emails)
    resumed = _sender(workspace, "--rate", "0")
    out, _ = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, out.decode()
    assert Counter(r[0] for _s, r, _d in smtp_server.messages) == Counter(
        {e: 1 for e in emails})


@pytest.mark.slow
@pytest.mark.parametrize("answer", ["no", "ctrl-c", "sigterm"])
def test_two_workers_start_while_the_editor_confirms_and_go_away_on_no(
        workspace, db_url, smtp_server, answer):
    """The worker processes start while this process plans and asks, so the send starts as
    soon as the editor says yes; a no, a Ctrl-C or a SIGTERM ends them: no process left, no
    traceback or warning."""
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en", "fr"] * 5)
    proc = _sender(workspace, "--workers", "2", yes=False, start_new_session=True)
    assert proc.stdin is not None
    assert until(lambda: len(_workers_of(proc.pid)) == 2), "no workers while asking"
    if answer == "no":
        out, _ = proc.communicate(b"n\n", timeout=60)
    else:
        time.sleep(0.3)  # let them start importing: a signal then must not print a traceback
        os.killpg(proc.pid, signal.SIGINT if answer == "ctrl-c" else signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    if answer == "sigterm":  # the parent dies of it, as before it had workers
        assert proc.returncode == -signal.SIGTERM, out.decode()
    else:
        assert proc.returncode == 1 and b"Aborted" in out, out.decode()
    assert b"Traceback" not in out and b"leaked" not in out, out.decode()
    assert until(lambda: not _workers_of(proc.pid), timeout=5)
    assert smtp_server.messages == [] and deliveries(workspace) == {}


@pytest.mark.parametrize("other_thread", [False, True], ids=["one-thread", "other-thread"])
def test_a_ctrl_c_while_the_workers_are_spawned_is_not_lost(tmp_path, monkeypatch,
                                                           other_thread):
    """SIGINT is held, not ignored, while the workers are spawned: the editor's Ctrl-C still
    stops the send (it used to be dropped, and with --yes the send went on), and the workers
    already started are ended. With another thread alive, the kernel hands it the signal
    that the main thread holds, and KeyboardInterrupt comes right after a worker starts."""
    import threading
    from multiprocessing.context import SpawnProcess

    from newsletter.config import load_settings
    from newsletter.delivery.crew import Crew

    start = SpawnProcess.start
    spawned = []

    def start_then_ctrl_c(self):
        start(self)
        spawned.append(self)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(SpawnProcess, "start", start_then_ctrl_c)
    settings = load_settings(tmp_path, environ={}, overrides={
        "newsletter": {"secret_key": "k" * 32, "from_address": "news@example.org"}})
    # Ctrl-C as in a terminal, whatever an earlier test in this process left installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    done = threading.Event()
    if other_thread:
        threading.Thread(target=done.wait, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            Crew(settings, 2)
    finally:
        done.set()
        signal.signal(signal.SIGINT, previous)
    # ended by the crew, not left to notice on their own that their pipe has closed
    assert spawned and [p.exitcode for p in spawned] == [-signal.SIGKILL] * len(spawned)


@pytest.mark.slow
@pytest.mark.parametrize("refusal", ["relay down", "no such issue"])
def test_a_refused_send_with_two_workers_says_why_in_one_line_and_leaves_no_process(
        workspace, db_url, smtp_server, unused_port, refusal):
    down = refusal == "relay down"
    configure(workspace, db_url, unused_port if down else smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en", "fr"] * 5)
    proc = _sender(workspace, "--workers", "2", "--json", slug="nov" if down else "dec",
                   start_new_session=True)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    lines = out.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    assert ("unreachable" if down else "no issue folder") in lines[0]
    assert until(lambda: not _workers_of(proc.pid), timeout=5)
    assert deliveries(workspace) == {}
