"""`send --at`: the issue waits, scheduled, until its time on the workers' clock, then goes out
at once. The clock is moved through NEWSLETTER_CLOCK_FILE (db.models.utcnow), never slept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from newsletter.db import models
from tests.delivery.sender_fixtures import configure, seed, write_issue
from tests.delivery.worker_fixtures import (
    Workers,
    issue_status,
    live_workers,
    query,
    wait_until,
    worker_env,
)


def _brussels(hours: float) -> tuple[str, datetime]:
    """A time `hours` from now as the editor writes it in Brussels, and that time in UTC."""
    when = (datetime.now(UTC) + timedelta(hours=hours)).replace(second=0, microsecond=0)
    local = when.astimezone(ZoneInfo("Europe/Brussels"))
    return f"{local:%Y-%m-%d %H:%M} Europe/Brussels", when


def test_a_scheduled_issue_waits_for_its_time_then_is_sent_at_once(
        tmp_path, workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    emails = seed(workspace, ["en", "fr", "es"] * 5)
    words, when = _brussels(2)
    result = run.json("send", "nov", "--yes", "--at", words)
    assert result["status"] == "scheduled" and result["queued"] == 15
    status = run("issue", "status", "nov").output
    assert f"{when:%Y-%m-%d %H:%M} UTC" in status and words in status
    clock = tmp_path / "clock"
    clock.write_text("0")
    env = worker_env(db_url, smtp_server.port, clock_file=clock)
    workers = Workers(tmp_path / "hosts", env)
    early = workers.start("--until-idle")  # nothing is due yet: it exits without sending
    assert early.wait(timeout=60) == 0
    assert not smtp_server.messages and issue_status(db_url) == "scheduled"
    clock.write_text(str((when - datetime.now(UTC)).total_seconds() - 60))  # a minute before
    try:
        workers.start()
        wait_until(lambda: live_workers(db_url) == 1, 30, "the worker to register")
        beats = query(db_url, "SELECT heartbeat_at FROM workers")
        wait_until(lambda: query(db_url, "SELECT heartbeat_at FROM workers") != beats, 10,
                   "a second heartbeat")
        assert not smtp_server.messages and issue_status(db_url) == "scheduled"
        clock.write_text(str((when - datetime.now(UTC)).total_seconds() + 1))  # just after
        moved = datetime.now(UTC)
        wait_until(lambda: smtp_server.wait_for(15, timeout=0.1), 20, "the scheduled send")
        assert (datetime.now(UTC) - moved).total_seconds() < 10
        wait_until(lambda: issue_status(db_url) == "sent", 10, "the issue to be sent")
    finally:
        workers.stop_all()
    assert sorted(r[0] for _s, r, _d in smtp_server.messages) == sorted(emails)
    started = query(db_url, "SELECT started_at FROM issues")[0][0]
    started = datetime.fromisoformat(str(started)).replace(tzinfo=UTC)
    assert when <= started < when + timedelta(minutes=1)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("words, message", [
    ("2020-01-01 09:00 Europe/Brussels", "is in the past"),
    ("2099-01-01 09:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ("2099-01-01 09:00", "say which time zone"),
    ("next tuesday", "not a date and time"),
])
def test_a_past_time_or_an_unknown_zone_is_one_clear_line(
        workspace, db_url, smtp_server, run, words, message):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en"])
    result = run("send", "nov", "--yes", "--at", words, ok=False)
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.sqlite_only
def test_an_iso_time_with_an_offset_is_accepted(workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en"])
    when = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    local = when.astimezone(ZoneInfo("America/Bogota"))  # -05:00
    result = run.json("send", "nov", "--yes", "--at", local.isoformat())
    assert result["zone"] == "-05:00"
    assert datetime.fromisoformat(result["scheduled_at"]) == when


def test_the_clock_file_moves_now_in_every_process(tmp_path, monkeypatch):
    clock = tmp_path / "clock"
    clock.write_text("3600")
    monkeypatch.setenv("NEWSLETTER_CLOCK_FILE", str(clock))
    assert 3590 < (models.utcnow() - datetime.now(UTC)).total_seconds() < 3610
    clock.write_text("2026-12-01T09:00:00+01:00")
    import os
    os.utime(clock, (1, 1))  # a new mtime, as a later write has
    assert models.utcnow() == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
