"""`newsletter issue pause|resume|cancel` from another process while workers send: every worker
stops within 2 seconds, finishes and records what was in flight, hands its claims back; a
cancel skips what was left; wrong states are one clear line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import update

from newsletter.db.engine import make_engine
from newsletter.db.tables import ISSUES
from newsletter.delivery.issues import finish
from tests.conftest import clean_env
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


def _claimed(db_url: str) -> int:
    return query(db_url, "SELECT count(*) FROM deliveries WHERE worker IS NOT NULL "
                 "OR status = 'sending'")[0][0]


def _stopped_within_two_seconds(db_url: str, server, workers: Workers | None = None) -> int:
    """Wait 2 s, then check that no claim is held and no message arrives any more."""
    time.sleep(2.0)
    assert _claimed(db_url) == 0, (query(
        db_url, "SELECT status, worker, lease_until FROM deliveries WHERE worker IS NOT NULL "
        "OR status = 'sending'"), workers and workers.outputs())
    quiet = len(server.messages)
    time.sleep(1.0)
    assert len(server.messages) == quiet
    return quiet


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_pause_resume_and_cancel_from_another_process_reach_every_worker(
        tmp_path, workspace, db_url, smtp_server, run):
    total = 4000
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace, languages=("en",))
    small_layout(workspace)
    seed(workspace, ["en"] * total, list_languages=("en",))
    env = worker_env(db_url, smtp_server.port, smtp_rate=150, smtp_connections=2)
    workers = Workers(tmp_path / "hosts", env)
    try:
        for _ in range(2):
            workers.start("--batch-size", "20")
        wait_until(lambda: live_workers(db_url) == 2, 30, "two workers to register")
        run("send", "nov", "--yes", "--detach")
        wait_until(lambda: smtp_server.wait_for(200, timeout=0.1), 60, "200 messages")
        wait_until(lambda: len(run.json("issue", "status", "nov")["workers"]) == 2, 10,
                   "both workers to be listed on the issue")
        assert "paused" in run("issue", "pause", "nov").output
        paused = _stopped_within_two_seconds(db_url, smtp_server, workers)
        assert counts(db_url)["sent"] == paused  # what was in flight was recorded
        assert issue_status(db_url) == "paused"

        assert "sending" in run("issue", "resume", "nov").output
        wait_until(lambda: smtp_server.wait_for(paused + 200, timeout=0.1), 30,
                   "the workers to go on")
        result = run.json("issue", "cancel", "nov")
        assert result["status"] == "cancelled" and result["skipped"] > 0
        sent = _stopped_within_two_seconds(db_url, smtp_server, workers)
        assert live_workers(db_url) == 2  # the workers stay up for the next issue
    finally:
        workers.stop_all()
    rows = deliveries(workspace)
    assert {status for status, _l, _r in rows.values()} == {"sent", "skipped"}
    assert sum(status == "sent" for status, _l, _r in rows.values()) == sent
    assert {r for status, _l, r in rows.values() if status == "skipped"} == {
        "skipped: the issue was cancelled"}
    assert issue_status(db_url) == "cancelled"
    assert all(p.returncode == 0 for p in workers.procs), workers.outputs()


@pytest.mark.sqlite_only
def test_a_send_run_here_is_paused_from_another_process(workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port, rate=100.0)
    write_issue(workspace, languages=("en",))
    seed(workspace, ["en"] * 2000, list_languages=("en",))
    env = clean_env()
    proc = subprocess.Popen([sys.executable, "-m", "newsletter", "-w", str(workspace), "send",
                             "nov", "--yes"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: smtp_server.wait_for(50, timeout=0.1), 60, "50 messages")
        run("issue", "pause", "nov")
        began = time.monotonic()
        out = proc.communicate(timeout=20)[0].decode()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    assert time.monotonic() - began < 5  # stopped, recorded, released and exited
    assert proc.returncode == 130, out
    assert "Paused" in out
    assert issue_status(db_url) == "paused"
    assert _claimed(db_url) == 0


@pytest.mark.sqlite_only
@pytest.mark.parametrize("first, action, message", [
    (None, "resume", "cannot resume issue 'nov': it was sent"),
    (None, "cancel", "cannot cancel issue 'nov': it was sent"),
    ("pause", "pause", "cannot pause issue 'nov': it was sent"),
])
def test_wrong_states_are_one_clear_line(workspace, db_url, smtp_server, run, first, action,
                                         message):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en"])
    run("send", "nov", "--yes")
    result = run("issue", action, "nov", ok=False)
    assert result.exit_code == 1 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    missing = run("issue", "cancel", "dec", ok=False)
    assert missing.exit_code == 1 and "has not been sent" in missing.output


@pytest.mark.sqlite_only
def test_a_draft_cannot_be_cancelled_and_a_sending_issue_cannot_be_resumed(
        workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en"])
    run("send", "nov", "--yes", "--detach")
    resumed = run("issue", "resume", "nov", ok=False)
    assert resumed.exit_code == 1 and "it is sending" in resumed.output
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(update(ISSUES).values(status="draft"))
    engine.dispose()
    cancelled = run("issue", "cancel", "nov", ok=False)
    assert cancelled.exit_code == 1 and "it has not been sent" in cancelled.output


def test_finishing_never_overwrites_a_pause_or_a_cancel(workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en"])
    run("send", "nov", "--yes", "--detach")
    engine = make_engine(db_url)
    try:
        for status in ("paused", "cancelled"):
            with engine.begin() as conn:
                conn.execute(update(ISSUES).values(status=status))
            assert finish(engine, 1) == status
            assert finish(engine, 1, paused=True) == status
        with engine.begin() as conn:
            conn.execute(update(ISSUES).values(status="sending"))
        assert finish(engine, 1) == "sending"  # one delivery is still queued
    finally:
        engine.dispose()


def test_the_workers_sweep_leaves_deliveries_alone_while_no_issue_is_cancelled(db_url):
    """Every worker runs the cancel sweep at every tick, nearly always with nothing cancelled:
    then it reads the issues only. As one UPDATE of deliveries it depended on that table's
    plan, and took 23-55 s a tick on statistics taken while the table was empty."""
    from sqlalchemy import event

    from newsletter.delivery.issues import skip_cancelled

    engine = make_engine(db_url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _conn, _cursor, statement, *_rest: statements.append(statement))
    assert skip_cancelled(engine, None, 0.0) == 0
    engine.dispose()
    assert statements and not any("deliveries" in s for s in statements), statements
