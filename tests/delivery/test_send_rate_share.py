"""A `newsletter send` run without --detach counts itself among the workers (registry.py), so
it and the long-running workers beside it keep a per-second rate together (pacing.py).

The worker is a real process in an empty folder (worker_fixtures.py); the send is the CLI in
this process; the relay is an aiosmtpd server in this process that notes when each message
arrives; SQLite and PostgreSQL.
"""

from __future__ import annotations

import time

import pytest

from tests.delivery.sender_fixtures import configure, copies, seed, write_issue
from tests.delivery.test_relay_rate import _arrivals, _busiest_second
from tests.delivery.worker_fixtures import (
    Workers,
    issue_status,
    live_workers,
    query,
    wait_until,
    worker_env,
)

RATE = 10
TOTAL = 60


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_send_beside_a_worker_keeps_the_rate_with_it_and_leaves_the_registry(
        tmp_path, workspace, db_url, smtp_server, run):
    arrived = _arrivals(smtp_server)
    configure(workspace, db_url, smtp_server.port, rate=float(RATE), connections=4,
              batch_size=5)
    write_issue(workspace, languages=("en",))
    emails = seed(workspace, ["en"] * TOTAL, list_languages=("en",))
    workers = Workers(tmp_path / "hosts", worker_env(db_url, smtp_server.port,
                                                     smtp_connections=4, smtp_rate=RATE))
    try:
        workers.start("--batch-size", "5")
        wait_until(lambda: live_workers(db_url) == 1, 30, "the worker to register")
        result = run.json("send", "nov", "--yes")  # "sending" while the worker ends its part
        wait_until(lambda: issue_status(db_url) == "sent", 60, "the issue to be sent", 0.2)
        wait_until(lambda: len(copies(smtp_server)) == TOTAL, 10, "the last message")
        time.sleep(1.5)  # the worker's next heartbeat counts its last messages
        names = [n for (n,) in query(db_url, "SELECT name FROM workers")]
        [(by_worker,)] = query(db_url, "SELECT sent FROM workers")
    finally:
        workers.stop_all()
    assert result["status"] in ("sent", "sending") and sorted(copies(smtp_server)) == sorted(emails)
    assert len(names) == 1  # the send's process left the registry when it ended
    assert 0 < by_worker < TOTAL, by_worker  # both sent
    # Alone, each would send 10 a second: together 20. The send counts itself, so each takes
    # half (the bound in pacing.py: R + n in a second, 1.5 R while one joins).
    mean = (TOTAL - 1) / (max(arrived) - min(arrived))
    busiest = _busiest_second(arrived)
    assert mean <= RATE * 1.15 and busiest <= RATE * 1.8, (mean, busiest)
