"""SIGKILL the sender while messages are in flight, resume each time: nobody twice, nobody
skipped, and exactly the messages in flight at each kill are reported unknown."""

from __future__ import annotations

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
from tests.conftest import clean_env
from tests.delivery.sender_fixtures import configure, deliveries, seed, write_issue

RECIPIENTS = 3000  # the kills come at 20 to 300 more messages each: 776 for the first five
CONNECTIONS = 4
KILLS = 5
MAX_KILLS = 12  # more kills only until one has landed with messages in flight


def _in_flight(workspace) -> int:
    engine = make_engine(load_settings(workspace).database_url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).where(Delivery.status == "sending")).scalar_one()
    engine.dispose()
    return n


def _sender(workspace, *extra: str) -> subprocess.Popen[bytes]:
    env = clean_env()
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "-w", str(workspace), "send", "nov", "--yes",
         *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _until_sending(proc: subprocess.Popen[bytes], server, count: int, timeout: float) -> bool:
    """Wait until the server has `count` messages while the sender still runs (False if not)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if server.wait_for(count, timeout=0.05):
            return proc.poll() is None
    raise AssertionError(f"the sender did not reach {count} messages in {timeout:.0f}s")


@pytest.mark.slow
@pytest.mark.timeout(600)  # seven sender processes; about 60 s on two busy cores
@pytest.mark.parametrize("pipelining", [False, True], ids=["lock-step", "pipelined"])
def test_sigkill_while_messages_are_in_flight_never_duplicates_or_skips_anyone(
        workspace, db_url, smtp_server, pipelining):
    smtp_server.pipelining = pipelining
    configure(workspace, db_url, smtp_server.port, connections=CONNECTIONS, rate=900.0)
    write_issue(workspace)
    emails = seed(workspace, ["en", "fr", "es", None] * (RECIPIENTS // 4))
    rng = random.Random(20261126)
    in_flight: list[int] = []  # rows marked `sending` and never answered, per kill
    while len(in_flight) < KILLS or (max(in_flight) == 0 and len(in_flight) < MAX_KILLS):
        proc = _sender(workspace)
        # Kill only once this run is demonstrably sending: some of its messages arrived.
        if not _until_sending(proc, smtp_server, len(smtp_server.messages) + rng.randint(20, 300),
                              timeout=60):
            break  # finished before we could kill it
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        in_flight.append(_in_flight(workspace))
        assert in_flight[-1] <= CONNECTIONS  # the write-ahead window
    final = _sender(workspace)
    out, _ = final.communicate(timeout=240)
    assert final.returncode == 0, out.decode()
    assert len(in_flight) >= KILLS, "the sender finished before it could be killed 5 times"
    assert bool(smtp_server.grouped["end and next envelope"]) == pipelining
    assert max(in_flight) > 0, f"no kill landed with a message in flight: {in_flight}"

    rows = deliveries(workspace)
    copies = Counter(rcpts[0] for _s, rcpts, _d in smtp_server.messages)
    unknown = {e for e, (status, _l, _r) in rows.items() if status == "unknown"}
    assert set(rows) == set(emails)
    assert {status for status, _l, _r in rows.values()} <= {"sent", "unknown"}
    # Exactly the rows each kill left in flight are reported unknown, no more.
    assert len(unknown) == sum(in_flight)
    for email in emails:
        if email in unknown:
            assert copies[email] <= 1
        else:
            assert copies[email] == 1, email
