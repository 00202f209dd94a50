"""The sender's error paths against a real SMTP server that refuses on request.

Each test checks both sides: the delivery row (status, reply, attempts) and what actually
reached the server. The run is the real `newsletter send`, in-process, on both engines.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.models import Delivery, Subscriber, utcnow
from newsletter.delivery import content
from tests.delivery.sender_fixtures import configure, seed, write_issue

THIEF = "another-host:1:thief"


# Every case twice: a relay without PIPELINING, and one offering it (conftest.py).
pytestmark = pytest.mark.usefixtures("both_pipelinings")


def _setup(workspace, db_url, port, n=6, **smtp) -> list[str]:
    configure(workspace, db_url, port, **smtp)
    write_issue(workspace)
    return seed(workspace, ["en", "fr", "es"] * (n // 3))


def _rows(workspace) -> dict[str, dict[str, Any]]:
    """email -> the delivery row's status, attempts, last reply and worker."""
    engine = make_engine(load_settings(workspace).database_url)
    with engine.connect() as conn:
        found = conn.execute(
            select(Subscriber.email, Delivery.status, Delivery.attempts, Delivery.last_reply,
                   Delivery.worker, Delivery.next_attempt_at)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id))
        rows = {r.email: dict(r._mapping) for r in found}
    engine.dispose()
    return rows


def _copies(server) -> Counter[str]:
    return Counter(rcpts[0] for _s, rcpts, _d in server.messages)


def _everyone_else_once(server, emails: list[str], *odd: str) -> None:
    assert _copies(server) == Counter({e: 1 for e in emails if e not in odd})


def test_5yz_at_the_end_of_data_is_failed_with_the_reply_and_not_retried(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port)
    spam = emails[2]
    smtp_server.data_reply_for = lambda rcpts, n: (
        "550 5.7.1 message rejected as spam" if rcpts[0] == spam else None)
    result = run.json("send", "nov", "--yes")
    assert result["sent"] == 5 and result["failed"] == 1 and result["status"] == "sent"
    row = _rows(workspace)[spam]
    assert row["status"] == "failed" and row["attempts"] == 1
    assert row["last_reply"] == "550 5.7.1 message rejected as spam"
    assert smtp_server.data_attempts[spam] == 1  # never retried
    _everyone_else_once(smtp_server, emails, spam)


def test_4yz_at_the_end_of_data_is_deferred_then_sent_once(run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port)
    busy = emails[1]
    smtp_server.data_reply_for = lambda rcpts, n: (
        "451 4.3.0 queue full, try later" if rcpts[0] == busy and n == 1 else None)
    result = run.json("send", "nov", "--yes")
    assert result["deferred"] == 1 and result["sent"] == 6 and result["status"] == "sent"
    row = _rows(workspace)[busy]
    assert row["status"] == "sent" and row["attempts"] == 2
    assert smtp_server.data_attempts[busy] == 2
    _everyone_else_once(smtp_server, emails)


def test_a_4yz_due_later_than_the_retry_window_stays_deferred_with_its_reply_and_time(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port, retry_delay=3600.0, retry_window=5.0)
    busy = emails[0]
    smtp_server.data_reply_for = lambda rcpts, n: (
        "451 4.3.0 queue full, try later" if rcpts[0] == busy else None)
    before = utcnow()
    result = run.json("send", "nov", "--yes")
    assert result["deferred"] == 1 and result["sent"] == 5 and result["status"] == "sending"
    row = _rows(workspace)[busy]
    assert row["status"] == "deferred" and row["attempts"] == 1
    assert row["last_reply"] == "451 4.3.0 queue full, try later"
    due = row["next_attempt_at"].replace(tzinfo=UTC) - before.replace(tzinfo=UTC)
    assert timedelta(minutes=59) < due < timedelta(minutes=61)  # retry_delay after the reply
    assert smtp_server.data_attempts[busy] == 1
    _everyone_else_once(smtp_server, emails, busy)


def test_mailbox_full_at_the_end_of_data_is_transient_even_as_5_2_2(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port)
    full = emails[5]
    smtp_server.data_reply_for = lambda rcpts, n: (
        "552 5.2.2 mailbox full" if rcpts[0] == full and n == 1 else None)
    result = run.json("send", "nov", "--yes")
    assert result["deferred"] == 1 and result["sent"] == 6
    assert _rows(workspace)[full]["status"] == "sent"
    _everyone_else_once(smtp_server, emails)


def test_the_rate_limit_spaces_the_messages(run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port, n=9, rate=10.0)
    arrivals: list[float] = []
    smtp_server.data_reply_for = lambda rcpts, n: arrivals.append(time.monotonic())
    result = run.json("send", "nov", "--yes")
    assert result["sent"] == 9
    # 9 messages at 10 a second: 8 intervals of 100 ms between the first and the last. The
    # bound leaves room for a late first message (unlimited, all 9 arrive within 0.15 s).
    assert max(arrivals) - min(arrivals) >= 0.5
    _everyone_else_once(smtp_server, emails)


def test_421_at_the_end_of_data_reconnects_and_sends_the_message_once(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port)
    target = emails[4]
    smtp_server.data_reply_for = lambda rcpts, n: (
        "421 4.3.2 shutting down" if rcpts[0] == target and n == 1 else None)
    result = run.json("send", "nov", "--yes")
    assert result["sent"] == 6 and result["status"] == "sent"
    assert _rows(workspace)[target]["status"] == "sent"
    assert smtp_server.data_attempts[target] == 2 and smtp_server.connections > 2
    _everyone_else_once(smtp_server, emails)


def test_giving_up_after_the_maximum_attempts_marks_the_delivery_failed(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port, max_attempts=3)
    stuck = emails[0]
    smtp_server.data_reply_for = lambda rcpts, n: (
        "452 4.2.2 over quota" if rcpts[0] == stuck else None)
    result = run.json("send", "nov", "--yes")
    assert result["failed"] == 1 and result["deferred"] == 2 and result["sent"] == 5
    row = _rows(workspace)[stuck]
    assert row["status"] == "failed" and row["attempts"] == 3
    assert row["last_reply"] == "gave up after 3 attempts: 452 4.2.2 over quota"
    assert smtp_server.data_attempts[stuck] == 3
    _everyone_else_once(smtp_server, emails, stuck)


def test_an_address_the_relay_refuses_at_rcpt_is_failed_and_nothing_is_sent_to_it(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port)
    unknown = emails[3]
    smtp_server.reply_for = lambda rcpt, n: (
        "550 5.1.1 no such mailbox" if rcpt == unknown else None)
    result = run.json("send", "nov", "--yes")
    assert result["failed"] == 1 and result["sent"] == 5
    row = _rows(workspace)[unknown]
    assert row["status"] == "failed" and row["last_reply"] == "550 5.1.1 no such mailbox"
    assert smtp_server.rcpt_attempts[unknown] == 1 and smtp_server.data_attempts[unknown] == 0
    _everyone_else_once(smtp_server, emails, unknown)


def test_a_message_that_cannot_be_built_is_failed_and_the_rest_are_sent(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port)
    engine = make_engine(db_url)
    with engine.begin() as conn:  # an address only SMTPUTF8 could carry; the relay lacks it
        conn.execute(update(Subscriber).where(Subscriber.email == emails[5])
                     .values(email="josé@example.org"))
    engine.dispose()
    result = run.json("send", "nov", "--yes")
    assert result["failed"] == 1 and result["sent"] == 5 and result["status"] == "sent"
    row = _rows(workspace)["josé@example.org"]
    assert row["status"] == "failed" and row["last_reply"].startswith("message not built: ")
    assert "SMTPUTF8" in row["last_reply"]
    assert smtp_server.connections >= 1 and "josé@example.org" not in _copies(smtp_server)
    _everyone_else_once(smtp_server, emails[:5])


def test_a_claim_stolen_between_the_claim_and_data_is_never_sent(
        run, workspace, db_url, smtp_server, monkeypatch: pytest.MonkeyPatch):
    emails = _setup(workspace, db_url, smtp_server.port)
    victim = emails[2]
    engine = make_engine(db_url)
    original = content.issue_content

    def built(*args: Any, **kwargs: Any) -> dict[str, Any]:
        """The real builders, except that building the victim's message lets another worker
        take its row, as when a lease expires while this worker stalls."""
        builds = original(*args, **kwargs)

        def wrap(build):
            def stolen(claimed):
                if claimed.email == victim:
                    with engine.begin() as conn:
                        conn.execute(update(Delivery).where(Delivery.id == claimed.delivery_id)
                                     .values(worker=THIEF,
                                             lease_until=utcnow() + timedelta(hours=1)))
                return build(claimed)
            return stolen
        return {lang: wrap(b) for lang, b in builds.items()}

    monkeypatch.setattr(content, "issue_content", built)
    result = run("send", "nov", "--yes", ok=False)
    engine.dispose()
    assert "Traceback" not in result.output
    row = _rows(workspace)[victim]
    assert row["status"] == "queued" and row["worker"] == THIEF and row["attempts"] == 0
    assert smtp_server.data_attempts[victim] == 0  # no DATA for a row this worker lost
    _everyone_else_once(smtp_server, emails, victim)


def test_a_deferral_still_being_committed_is_retried_in_the_same_run(
        run, workspace, db_url, smtp_server, monkeypatch: pytest.MonkeyPatch):
    """A slow database: the run must not end while a deferral's commit is under way."""
    from newsletter.delivery import journal

    emails = _setup(workspace, db_url, smtp_server.port)
    busy = emails[0]
    # Its second deferral comes when nothing else is left: only that commit is under way.
    smtp_server.data_reply_for = lambda rcpts, n: (
        "451 4.3.0 try later" if rcpts[0] == busy and n <= 2 else None)
    for writer in (journal.SqliteWriter, journal.PostgresWriter):
        def slow(self, *args, _commit=writer.commit, **kwargs):
            async def commit():
                await asyncio.sleep(0.3)  # a commit that takes its time (a busy disk)
                return await _commit(self, *args, **kwargs)
            return commit()
        monkeypatch.setattr(writer, "commit", slow)
    result = run.json("send", "nov", "--yes")
    assert result["status"] == "sent" and result["sent"] == 6 and result["deferred"] == 2
    assert _rows(workspace)[busy]["status"] == "sent" and smtp_server.data_attempts[busy] == 3
    _everyone_else_once(smtp_server, emails)


def test_a_message_put_back_while_a_claim_runs_is_still_sent_in_the_same_run(
        run, workspace, db_url, smtp_server, monkeypatch: pytest.MonkeyPatch):
    """A 421 puts the row back to the queue while the feeder's claim is running: that claim
    cannot see it, and the run must claim again rather than end with the row queued."""
    from newsletter.delivery import queue

    emails = _setup(workspace, db_url, smtp_server.port)
    target = emails[4]
    smtp_server.data_reply_for = lambda rcpts, n: (
        "421 4.3.2 shutting down" if rcpts[0] == target and n == 1 else None)
    claim = queue.claim

    def slow_claim(*args: Any, **kwargs: Any) -> list[Any]:
        rows = claim(*args, **kwargs)
        if not rows:
            time.sleep(0.5)  # the 421's outcome commits meanwhile
        return rows

    monkeypatch.setattr(queue, "claim", slow_claim)
    result = run.json("send", "nov", "--yes")
    assert result["sent"] == 6 and result["status"] == "sent"
    assert _rows(workspace)[target]["status"] == "sent"
    _everyone_else_once(smtp_server, emails)
