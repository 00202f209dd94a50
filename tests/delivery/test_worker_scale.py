"""Several `newsletter worker` processes on one PostgreSQL database, each in an empty folder:
they share the deliveries (FOR UPDATE SKIP LOCKED), nobody gets two copies, and a worker
killed mid-run loses its claims to the others."""

from __future__ import annotations

import re
import signal
from collections import Counter

import pytest

from tests.delivery.sender_fixtures import configure, deliveries, seed, write_issue
from tests.delivery.worker_fixtures import (
    Workers,
    counts,
    issue_status,
    live_workers,
    query,
    small_layout,
    wait_until,
    worker_env,
)

pytestmark = [pytest.mark.postgresql_only, pytest.mark.slow]


def _worker_of(data: bytes) -> int:
    """The delivery id a message carries in its Message-ID."""
    found = re.search(rb"Message-ID: <(\d+)\.", data)
    assert found is not None
    return int(found.group(1))


@pytest.mark.timeout(420)  # about 60 s of CPU (a third in the relay); 140 s on busy cores
def test_three_workers_share_20000_deliveries_and_nobody_gets_two_copies(
        tmp_path, workspace, db_url, smtp_server, run):
    total = 20_000
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace, languages=("en",))
    small_layout(workspace)
    emails = seed(workspace, ["en"] * total, list_languages=("en",))
    workers = Workers(tmp_path / "hosts", worker_env(db_url, smtp_server.port,
                                                     smtp_connections=4))
    try:
        procs = [workers.start("--batch-size", "100") for _ in range(3)]
        wait_until(lambda: live_workers(db_url) == 3, 30, "three workers to register")
        run("send", "nov", "--yes", "--detach")
        wait_until(lambda: issue_status(db_url) == "sent", 240, "the issue to be sent", 0.5)
        assert query(db_url, "SELECT count(*) FROM deliveries WHERE worker IS NOT NULL") == [
            (0,)]  # every claim was settled
        # Each worker's count reaches the registry with its next heartbeat (every second).
        wait_until(lambda: query(db_url, "SELECT sum(sent) FROM workers") == [(total,)], 10,
                   "the heartbeats to count every message")
        on_issue = query(db_url, "SELECT pid, sent FROM workers ORDER BY pid")
    finally:
        workers.stop_all()
    assert all(p.returncode == 0 for p in procs)
    copies = Counter(rcpts[0] for _s, rcpts, _d in smtp_server.messages)
    assert len(copies) == total and set(copies) == set(emails)
    assert max(copies.values()) == 1
    assert len({_worker_of(d) for _s, _r, d in smtp_server.messages}) == total
    sent_by = {pid: sent for pid, sent in on_issue}
    assert sorted(sent_by) == sorted(p.pid for p in procs)
    assert min(sent_by.values()) > total // 20, sent_by  # every worker sent a share


@pytest.mark.timeout(300)
def test_a_killed_workers_claims_are_taken_over_with_no_duplicate(
        tmp_path, workspace, db_url, smtp_server, run):
    total = 3000
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace, languages=("en",))
    small_layout(workspace)
    emails = seed(workspace, ["en"] * total, list_languages=("en",))
    workers = Workers(tmp_path / "hosts", worker_env(db_url, smtp_server.port,
                                                     smtp_connections=4, smtp_rate=400))
    try:
        victim = workers.start("--lease", "3", "--batch-size", "200")
        wait_until(lambda: live_workers(db_url) == 1, 30, "the first worker to register")
        run("send", "nov", "--yes", "--detach")
        wait_until(lambda: smtp_server.wait_for(300, timeout=0.1), 60, "300 messages")
        survivor = workers.start("--lease", "3", "--batch-size", "200")
        wait_until(lambda: live_workers(db_url) == 2, 30, "the second worker to register")
        prefix = f"%:{victim.pid}:%"
        held = query(db_url, "SELECT count(*) FROM deliveries WHERE worker LIKE :p", p=prefix)
        assert held[0][0] > 0  # the victim holds a batch when it dies
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        wait_until(lambda: issue_status(db_url) == "sent", 120, "the survivor to finish", 0.5)
        survivor_pid = survivor.pid
    finally:
        workers.stop_all()
    rows = deliveries(workspace)
    unknown = {e for e, (status, _l, _r) in rows.items() if status == "unknown"}
    assert {status for status, _l, _r in rows.values()} <= {"sent", "unknown"}
    assert len(unknown) <= 4  # at most one message in flight per connection
    copies = Counter(rcpts[0] for _s, rcpts, _d in smtp_server.messages)
    for email in emails:
        assert copies[email] == (copies[email] if email in unknown else 1), email
        assert copies[email] <= 1
    assert counts(db_url).get("sent", 0) == total - len(unknown)
    assert query(db_url, "SELECT count(*) FROM workers WHERE pid = :p", p=survivor_pid) == [(0,)]
    # The registry still lists the killed worker (no heartbeat): `workers --prune` drops it.
    assert query(db_url, "SELECT count(*) FROM workers WHERE pid = :p", p=victim.pid) == [(1,)]
