"""The send enqueues in chunks while its first messages go out (dispatch.begin_send, deliver).

A send stopped between two chunks, by SIGKILL or Ctrl-C, leaves the issue unsent with part of
its rows; `newsletter send` again adds the rest and mails everyone exactly once. While the
enqueue is under way, no worker sets the issue sent, however quickly it drains the rows there.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.sender import sender_engine
from newsletter.db.tables import DELIVERIES, ISSUES
from newsletter.delivery import dispatch
from newsletter.delivery.daemon import WorkerOptions, serve
from tests.conftest import clean_env
from tests.delivery.sender_fixtures import configure, deliveries, seed, write_issue

RECIPIENTS = 600  # 15 chunks of 40, 0.2 s apart (tests/delivery/slow_enqueue.py)


def _issue(workspace) -> tuple[int, str | None, bool]:
    """(rows enqueued, the issue's status, whether its enqueue is under way)."""
    engine = make_engine(load_settings(workspace).database_url)
    with engine.connect() as conn:
        rows = conn.scalar(select(func.count()).select_from(DELIVERIES))
        issue = conn.execute(select(ISSUES.c.status, ISSUES.c.enqueuing)).first()
    engine.dispose()
    return (rows or 0, *(issue or (None, False)))


def _send(workspace, module: str) -> subprocess.Popen[bytes]:
    env = clean_env()
    return subprocess.Popen(
        [sys.executable, "-m", module, "-w", str(workspace), "send", "nov", "--yes"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _midway(proc: subprocess.Popen[bytes], workspace, server) -> int:
    """Wait until messages go out while the enqueue still adds rows; the rows there."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        rows, _status, _enqueuing = _issue(workspace)
        if server.messages and 0 < rows < RECIPIENTS - 80:
            return rows
        time.sleep(0.02)
    out = proc.communicate()[0] if proc.poll() is not None else b""
    raise AssertionError(f"the send never sent while enqueuing: {out.decode()[-2000:]}")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_a_send_stopped_between_two_chunks_of_its_enqueue_mails_everyone_once_when_resumed(
        workspace, db_url, smtp_server, signum):
    configure(workspace, db_url, smtp_server.port, connections=4, rate=200.0)
    write_issue(workspace)
    emails = seed(workspace, ["en", "fr", "es", None] * (RECIPIENTS // 4))
    proc = _send(workspace, "tests.delivery.slow_enqueue")
    _midway(proc, workspace, smtp_server)
    proc.send_signal(signum)
    out = proc.communicate(timeout=60)[0].decode()
    rows, status, enqueuing = _issue(workspace)
    assert rows < RECIPIENTS, out  # stopped with part of the audience enqueued
    assert enqueuing and status in ("sending", "paused"), out  # not sent: the rest is owed
    if signum == signal.SIGINT:
        assert proc.returncode == 130 and status == "paused", out
        assert "Run `newsletter send nov` again to resume" in out

    final = _send(workspace, "newsletter")
    out = final.communicate(timeout=120)[0].decode()
    assert final.returncode == 0, out
    assert "Resuming nov" in out and "issue is sent" in out, out
    rows_by_email = deliveries(workspace)
    copies = Counter(rcpts[0] for _s, rcpts, _d in smtp_server.messages)
    assert set(rows_by_email) == set(emails)
    for email, (row_status, _lang, _reply) in rows_by_email.items():
        assert row_status in ("sent", "unknown"), (email, row_status)
        # An `unknown` row was in flight at the kill: it got at most one copy.
        assert copies[email] == 1 if row_status == "sent" else copies[email] <= 1, email
    assert _issue(workspace)[1:] == ("sent", False)


def test_no_worker_sets_the_issue_sent_while_its_enqueue_is_under_way(
        workspace, db_url, services, smtp_server, monkeypatch):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    emails = seed(workspace, ["en", "fr", "es", None] * 25)
    monkeypatch.setattr(dispatch, "FIRST_CHUNK", 30)
    settings = load_settings(workspace)
    key = services.keyring.address_key
    engine = sender_engine(settings.database_url, key)
    plan = dispatch.prepare_send(settings, engine, "nov", check=False)
    issue_id, added = dispatch.begin_send(settings, engine, plan, whole=False)
    assert added == 30

    def drain() -> None:  # a `newsletter worker --until-idle` on another host
        serve(settings, engine, engine, key, WorkerOptions(until_idle=True, tick=0.05))

    drain()
    assert len(smtp_server.messages) == 30
    assert _issue(workspace)[1:] == ("sending", True)  # the other 70 are still owed

    resumed = dispatch.prepare_send(settings, engine, "nov", check=False)
    assert resumed.plan is not None and resumed.plan.total == 70
    dispatch.begin_send(settings, engine, resumed)
    drain()
    assert _issue(workspace) == (100, "sent", False)
    assert Counter(rcpts[0] for _s, rcpts, _d in smtp_server.messages) == Counter(emails)
    engine.dispose()


def test_the_progress_bar_counts_the_rows_the_enqueue_still_adds():
    from rich.console import Console

    from newsletter.cli.send import _Bar

    bar = _Bar(Console(quiet=True), 1000, enabled=False, expected=49000)  # after chunk one
    total = lambda: bar.progress.tasks[0].total  # noqa: E731
    assert total() == 50000  # what the editor confirmed, from the start
    bar.enqueued(10000, False)
    assert total() == 50000
    bar.enqueued(48998, True)  # two subscribers left meanwhile: the bar ends full
    assert total() == 49998
