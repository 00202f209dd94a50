"""Worker processes and Ctrl-C: several workers share the queue; SIGINT pauses, send resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from tests.delivery.sender_fixtures import configure, deliveries, seed, write_issue


def _sender(workspace, *extra: str, start_new_session: bool = False) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "-w", str(workspace), "send", "nov", "--yes",
         *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=start_new_session)


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
