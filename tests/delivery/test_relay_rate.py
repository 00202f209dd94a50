"""A per-second rate is a limit for the whole network of workers (delivery/pacing.py): two
`newsletter worker` processes on one database send through one relay at its `rate`, not twice
it.

The workers are real processes in empty folders (worker_fixtures.py); the relay is an aiosmtpd
server in this process that notes when each message arrives; SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.delivery.sender_fixtures import configure, copies, seed, write_issue
from tests.delivery.worker_fixtures import (
    Workers,
    issue_status,
    live_workers,
    query,
    wait_until,
    worker_env,
)

RATE = 10
TOTAL = 40  # 4 s at the rate; twice the rate (each worker at all of it) is told apart in 2 s


def _busiest_second(times: list[float]) -> int:
    """The most messages that arrived within any one second."""
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times))


def _arrivals(server) -> list[float]:
    """When each message's DATA arrived (monotonic seconds), filled as the server runs."""
    arrived: list[float] = []
    lock = threading.Lock()

    def note(_rcpts, _n):
        with lock:
            arrived.append(time.monotonic())

    server.data_reply_for = note  # answers None: the message is taken as usual
    return arrived


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("limit", ["relay", "smtp"])
def test_two_workers_together_keep_a_relays_rate_per_second(
        tmp_path, workspace, db_url, smtp_server, run, limit):
    arrived = _arrivals(smtp_server)
    configure(workspace, db_url, smtp_server.port)  # for `send --detach`, which sends nothing
    write_issue(workspace, languages=("en",))
    emails = seed(workspace, ["en"] * TOTAL, list_languages=("en",))
    if limit == "relay":  # [[smtp.relays]] rate = 10
        extra = {"smtp_relays": json.dumps([{"name": "a", "host": "127.0.0.1",
                                             "port": smtp_server.port, "rate": RATE}])}
    else:  # [smtp] rate = 10, the one [smtp] relay
        extra = {"smtp_rate": RATE}
    workers = Workers(tmp_path / "hosts", worker_env(db_url, smtp_server.port,
                                                     smtp_connections=4, **extra))
    try:
        for _ in range(2):
            workers.start("--batch-size", "10")
        wait_until(lambda: live_workers(db_url) == 2, 30, "two workers to register")
        time.sleep(2.5)  # a heartbeat of each since both are live: each counts two
        run("send", "nov", "--yes", "--detach")
        wait_until(lambda: issue_status(db_url) == "sent", 60, "the issue to be sent", 0.2)
        wait_until(lambda: query(db_url, "SELECT sum(sent) FROM workers") == [(TOTAL,)], 10,
                   "the heartbeats to count every message")
        shares = [n for (n,) in query(db_url, "SELECT sent FROM workers")]
    finally:
        workers.stop_all()
    assert sorted(copies(smtp_server)) == sorted(emails)
    assert min(shares) > 0, shares  # both workers sent
    # Each worker alone would send 10 a second: together 20 (before, 20 on average and 27 in
    # the busiest second). The workers start each message at most R + 2 a second; they arrive
    # later by the time of the SMTP dialogue, which varies on a loaded machine, so the busiest
    # second of arrivals may hold a few more.
    mean = (TOTAL - 1) / (max(arrived) - min(arrived))
    busiest = _busiest_second(arrived)
    assert mean <= RATE * 1.1 and busiest <= RATE * 1.8, (mean, busiest, shares)
