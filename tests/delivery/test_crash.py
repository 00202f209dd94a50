"""SIGKILL the sender at random moments, resume each time: nobody twice, nobody skipped."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.models import Delivery
from tests.delivery.sender_fixtures import configure, deliveries, seed, write_issue

RECIPIENTS = 5000
CONNECTIONS = 4
KILLS = 5


def _in_flight(workspace) -> int:
    engine = make_engine(load_settings(workspace).database_url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).where(Delivery.status == "sending")).scalar_one()
    engine.dispose()
    return n


def _sender(workspace, *extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "-w", str(workspace), "send", "nov", "--yes",
         *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_duplicates_or_skips_anyone(
        workspace, db_url, smtp_server):
    configure(workspace, db_url, smtp_server.port, connections=CONNECTIONS, rate=900.0)
    write_issue(workspace)
    emails = seed(workspace, ["en", "fr", "es", None] * (RECIPIENTS // 4))
    rng = random.Random(20261126)
    kills = 0
    while kills < KILLS:
        proc = _sender(workspace)
        time.sleep(rng.uniform(1.0, 2.2))
        if proc.poll() is not None:
            break  # finished before we could kill it
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert _in_flight(workspace) <= CONNECTIONS  # the write-ahead window
    final = _sender(workspace)
    out, _ = final.communicate(timeout=120)
    assert final.returncode == 0, out.decode()
    assert kills >= KILLS, "the sender finished before it could be killed 5 times"

    rows = deliveries(workspace)
    copies = Counter(rcpts[0] for _s, rcpts, _d in smtp_server.messages)
    unknown = {e for e, (status, _l, _r) in rows.items() if status == "unknown"}
    assert set(rows) == set(emails)
    assert {status for status, _l, _r in rows.values()} <= {"sent", "unknown"}
    assert len(unknown) <= CONNECTIONS * kills
    for email in emails:
        if email in unknown:
            assert copies[email] <= 1
        else:
            assert copies[email] == 1, email
