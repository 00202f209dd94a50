"""Several `newsletter worker` processes on one PostgreSQL database, each in an empty folder
with only environment variables: they share the deliveries (FOR UPDATE SKIP LOCKED) over two
relays, one of which dies half-way, nobody gets two copies, and a worker killed mid-run loses
its claims to the others. A worker's CPU per message does not grow with the issue's size."""

from __future__ import annotations

import json
import os
import re
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.delivery.sender_fixtures import (
    configure,
    copies,
    deliveries,
    seed,
    stop_after,
    write_issue,
)
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


def _relays_env(*servers) -> str:
    """NEWSLETTER_SMTP_RELAYS naming each server a, b, ...: a worker's connections go half to
    each, and all to one when the other is out."""
    return json.dumps([{"name": chr(ord("a") + i), "host": "127.0.0.1", "port": server.port,
                        "connections": 4} for i, server in enumerate(servers)])


@pytest.mark.timeout(300)  # about 18 s of CPU (a third in the relays); 45 s on busy cores
def test_three_workers_over_two_relays_one_dying_half_way_send_6000_once_each(
        tmp_path, workspace, db_url, smtp_server_factory, run):
    # The size is for sharing and failover (each worker's batches of 100 on both relays and
    # after one died); what scale alone would show is the next test's, at less cost.
    total = 6000
    a, b = smtp_server_factory(), smtp_server_factory()
    a.reply_for = stop_after(a, total // 4)  # about half of its share of the 6,000
    configure(workspace, db_url, b.port)  # only for `send --detach`, which sends nothing
    write_issue(workspace, languages=("en",))
    small_layout(workspace)
    emails = seed(workspace, ["en"] * total, list_languages=("en",))
    # The relays come from the environment, like every other setting: the folders stay empty.
    workers = Workers(tmp_path / "hosts", worker_env(db_url, b.port, smtp_connections=4,
                                                     smtp_relays=_relays_env(a, b)))
    try:
        procs = [workers.start("--batch-size", "100") for _ in range(3)]
        wait_until(lambda: live_workers(db_url) == 3, 30, "three workers to register")
        run("send", "nov", "--yes", "--detach")
        wait_until(lambda: issue_status(db_url) == "sent", 120, "the issue to be sent", 0.5)
        assert query(db_url, "SELECT count(*) FROM deliveries WHERE worker IS NOT NULL") == [
            (0,)]  # every claim was settled
        unknown = {e for e, (status, _l, _r) in deliveries(workspace).items()
                   if status == "unknown"}
        assert counts(db_url) == {"sent": total - len(unknown), **(
            {"unknown": len(unknown)} if unknown else {})}
        # Each worker's count reaches the registry with its next heartbeat (every second).
        wait_until(lambda: query(db_url, "SELECT sum(sent) FROM workers") == [
            (total - len(unknown),)], 10, "the heartbeats to count every message")
        on_issue = query(db_url, "SELECT pid, sent FROM workers ORDER BY pid")
    finally:
        workers.stop_all()
    assert all(p.returncode == 0 for p in procs), workers.outputs()
    # a died once it had stored 1,500 (plus what was in its sessions' DATA then); b took the
    # rest. A message whose DATA a stored without its answer reaching us is `unknown`.
    assert not a.running and total // 4 <= len(a.messages) <= total // 4 + 12
    assert len(unknown) <= 12  # at most one per connection to a (three workers x four)
    got = copies(a, b)
    assert set(got) == set(emails) - {e for e in unknown if not got[e]}
    assert max(got.values()) == 1 and {e for e in emails if got[e] != 1} <= unknown
    assert len({_worker_of(d) for s in (a, b) for _s, _r, d in s.messages}) == sum(got.values())
    sent_by = {pid: sent for pid, sent in on_issue}
    assert sorted(sent_by) == sorted(p.pid for p in procs)
    assert min(sent_by.values()) > total // 20, sent_by  # every worker sent a share
    for proc in procs:  # each worker saw a die and took it out (its log line on stderr)
        assert re.search(rf"SMTP relay a at 127\.0\.0\.1:{a.port} .*: taken out for 60 s",
                         workers.output(proc)), workers.outputs()
    assert "SMTP relay b" not in workers.outputs()


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of a running process so far (/proc/PID/stat: utime, stime); 0 once
    it is gone (or on another host)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    utime, stime = stat[stat.rindex(")") + 2:].split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def _cpu_per_message(db_url: str, pid: int, server, before: int, size: int) -> float:
    """The CPU of the worker and of the PostgreSQL server processes that serve its connections
    per message, from the 20th to the 90th percent of an issue's messages at the relay: its
    start and its end (the issue's set-up, the last commits) left out."""
    marks = []
    for share in (0.2, 0.9):
        wait_until(lambda s=share: len(server.messages) >= before + s * size, 120,
                   f"{share:.0%} of {size} messages", 0.02)
        backends = query(db_url, "SELECT pid FROM pg_stat_activity WHERE datname = "
                         "current_database() AND pid <> pg_backend_pid()")
        pids = [pid, *(b for (b,) in backends)]
        marks.append(({p: _cpu_seconds(p) for p in pids}, len(server.messages)))
    (cpu_first, first), (cpu_last, last) = marks
    # The processes there at both marks: the worker and its connections, not this test's own.
    spent = sum(cpu_last[p] - cpu_first[p] for p in cpu_first.keys() & cpu_last.keys())
    return spent / (last - first)


@pytest.mark.timeout(300)
def test_a_workers_cpu_per_message_stays_flat_from_a_small_issue_to_a_large_one(
        tmp_path, workspace, db_url, smtp_server, run):
    """One worker sends an issue of 1,000 and then one of 4,000 (the first one's rows still in
    the table). Its CPU per message and its database server's, read from /proc while it sends,
    are the same on both: work per message that grew with the issue or the table (a claim, the
    journal or a count rescanning rows, a missing index: a send in O(n^2)) would make them
    higher on the large one. This is what
    sending 20,000 once showed only by a timeout, at a quarter of the messages."""
    sizes = {"small": 1000, "large": 4000}
    configure(workspace, db_url, smtp_server.port)  # only for `send --detach`
    small_layout(workspace)
    workers = Workers(tmp_path / "hosts", worker_env(db_url, smtp_server.port,
                                                     smtp_connections=4))
    per_message = {}
    try:
        proc = workers.start("--batch-size", "100")
        wait_until(lambda: live_workers(db_url) == 1, 30, "the worker to register")
        before = 0
        for slug, size in sizes.items():
            write_issue(workspace, slug=slug, list_slug=slug, languages=("en",))
            seed(workspace, ["en"] * size, list_slug=slug, list_languages=("en",), start=before)
            run("send", slug, "--yes", "--detach")
            per_message[slug] = _cpu_per_message(db_url, proc.pid, smtp_server, before, size)
            wait_until(lambda s=slug: issue_status(db_url, s) == "sent", 120, f"{slug} sent", 0.2)
            before += size
    finally:
        workers.stop_all()
    assert proc.returncode == 0, workers.outputs()
    assert len(smtp_server.messages) == sum(sizes.values())
    print(f"CPU per message: {per_message}")
    assert per_message["large"] < 1.4 * per_message["small"], per_message


@pytest.mark.timeout(300)
def test_a_killed_workers_batch_is_taken_over_once_its_lease_expires_with_no_duplicate(
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
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        # As if it ran on another host: nobody can see that its process is gone, so its
        # claims come back only when their lease runs out.
        held = query(db_url, "UPDATE deliveries SET worker = 'elsewhere:' || worker "
                     "WHERE worker LIKE :p RETURNING id, status, lease_until",
                     p=f"%:{victim.pid}:%")
        assert any(status == "queued" for _i, status, _l in held)  # it held a batch
        in_flight = {i for i, status, _l in held if status == "sending"}
        assert len(in_flight) <= 4  # at most one message in flight per connection
        survivor = workers.start("--lease", "3", "--batch-size", "200")
        wait_until(lambda: issue_status(db_url) == "sent", 120, "the survivor to finish", 0.5)
        survivor_pid = survivor.pid
    finally:
        workers.stop_all()
    # Every row of the dead worker's batch was sent by the survivor, after the lease ended;
    # its messages in flight are reported unknown, not sent again.
    after = {i: (status, sent_at) for i, status, sent_at in query(
        db_url, "SELECT id, status, sent_at FROM deliveries WHERE id = ANY(:ids)",
        ids=[i for i, _s, _l in held])}
    for delivery_id, _status, lease_until in held:
        if delivery_id in in_flight:
            assert after[delivery_id][0] == "unknown"
        else:
            assert after[delivery_id][0] == "sent"
            assert after[delivery_id][1] >= lease_until
    rows = deliveries(workspace)
    unknown = {e for e, (status, _l, _r) in rows.items() if status == "unknown"}
    assert {status for status, _l, _r in rows.values()} <= {"sent", "unknown"}
    assert len(unknown) == len(in_flight)
    copies = Counter(rcpts[0] for _s, rcpts, _d in smtp_server.messages)
    assert {e for e in emails if copies[e] != 1} <= unknown
    assert max(copies.values()) == 1
    assert counts(db_url).get("sent", 0) == total - len(unknown)
    assert query(db_url, "SELECT count(*) FROM workers WHERE pid = :p", p=survivor_pid) == [(0,)]
    # The killed worker's row (no heartbeat) stays until a live worker finds it silent for
    # registry.PRUNE_AFTER (a survivor slowed by a busy machine may get there), or `workers
    # --prune` drops it.
    assert query(db_url, "SELECT count(*) FROM workers WHERE pid = :p", p=victim.pid)[0][0] <= 1
