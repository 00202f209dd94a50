"""The outbox of system mails is a second kind of queue run like a send: the same relays (their
hourly limits, their cool-down, shared with the sends and every process through the database,
the one [smtp] relay too), the same retry curve (`[smtp] retry_delay`), in the worker.

Every relay is a real aiosmtpd server in this process (conftest.py), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.models import utcnow
from newsletter.delivery.mailrun import MailRun
from newsletter.delivery.relayview import relays_out
from newsletter.outbox import OutboxReport, deliver_outbox, enqueue, list_outbox
from tests.delivery.sender_fixtures import configure, copies, seed, write_issue
from tests.delivery.test_relays import configure_relays
from tests.delivery.worker_fixtures import Workers, query, worker_env

MESSAGE = b"Subject: Confirm\r\n\r\nPlease confirm.\r\n"


def _enqueue(db_url: str, first: int, n: int) -> list[str]:
    engine = make_engine(db_url)
    emails = [f"user{i}@example.org" for i in range(first, first + n)]
    for email in emails:
        enqueue(engine, "confirm", email, "news@example.org", MESSAGE)
    engine.dispose()
    return emails


def test_the_worker_keeps_a_relays_hourly_limit_for_system_mails(tmp_path, db_url,
                                                                 smtp_server_factory):
    a, b = smtp_server_factory(), smtp_server_factory()
    emails = _enqueue(db_url, 0, 5)
    relays = json.dumps([{"name": "a", "host": "127.0.0.1", "port": a.port, "hourly": 2},
                         {"name": "b", "host": "127.0.0.1", "port": b.port}])
    workers = Workers(tmp_path / "hosts", worker_env(db_url, a.port, smtp_relays=relays))
    proc = workers.start("--until-idle")
    proc.wait(timeout=60)
    output = workers.output(proc)
    assert proc.returncode == 0, output
    assert "system mails sent 5" in output
    assert (len(a.messages), len(b.messages)) == (2, 3)  # a's hour is spent after two
    assert sorted(copies(a, b)) == emails
    assert query(db_url, "SELECT DISTINCT status FROM outbox") == [("sent",)]


def test_a_relay_taken_out_stays_out_for_its_cool_down_from_one_pass_to_the_next(
        workspace, db_url, smtp_server_factory):
    a, b = smtp_server_factory(), smtp_server_factory()
    a.reply_for = lambda rcpt, n: "421 4.3.2 too busy, closing"
    configure_relays(workspace, db_url, [("a", a, {}), ("b", b, {})], retry_delay=600.0)
    settings = load_settings(workspace)
    engine = make_engine(settings.database_url)

    async def two_passes() -> tuple[OutboxReport, int, OutboxReport]:
        mails = MailRun(settings)  # one per process, as the worker and the web app keep it
        first = await deliver_outbox(settings, engine, mails=mails)
        tried = a.connections
        await asyncio.to_thread(_enqueue, settings.database_url, 4, 2)
        return first, tried, await deliver_outbox(settings, engine, mails=mails)

    try:
        _enqueue(settings.database_url, 0, 4)
        first, tried, second = asyncio.run(two_passes())
        rows = {r.recipient: r for r in list_outbox(engine)}
    finally:
        engine.dispose()
    # Three 421s in a row take a out (a strike each); the fourth mail goes through b.
    assert (first.sent, first.deferred) == (1, 3) and tried == 3
    assert rows["user0@example.org"].last_error.startswith("421 4.3.2")
    # The next pass, within the cool-down, does not knock on a's door again.
    assert (second.sent, second.deferred) == (2, 0) and a.connections == 3
    assert sorted(copies(b)) == [f"user{i}@example.org" for i in (3, 4, 5)]


def _pass(workspace, at: datetime) -> tuple[OutboxReport, datetime | None]:
    settings = load_settings(workspace)
    engine = make_engine(settings.database_url)
    try:
        report = asyncio.run(deliver_outbox(settings, engine, now=at))
        [row] = list_outbox(engine)
    finally:
        engine.dispose()
    return report, row.next_attempt_at


def test_a_deferred_system_mail_waits_the_send_s_retry_delay_doubled_and_at_most_an_hour(
        workspace, db_url, smtp_server):
    configure(workspace, db_url, smtp_server.port, retry_delay=2400.0)  # 40 minutes
    _enqueue(db_url, 0, 1)
    smtp_server.fail_data_once = 2  # 451 twice, then the relay takes it
    start = utcnow()
    report, due = _pass(workspace, start)
    assert report.deferred == 1 and due is not None
    assert timedelta(minutes=39) < due - start <= timedelta(minutes=41)
    assert _pass(workspace, start + timedelta(minutes=2))[0].total == 0  # not due yet
    later = start + timedelta(minutes=41)
    report, due = _pass(workspace, later)
    assert report.deferred == 1 and due is not None
    # Doubled would be 80 minutes: a system mail waits at most an hour.
    assert timedelta(minutes=59) < due - later <= timedelta(minutes=61)
    report, _due = _pass(workspace, later + timedelta(minutes=61))
    assert report.sent == 1 and len(smtp_server.messages) == 1


def test_system_mails_keep_a_relays_rate_and_a_pass_hands_back_what_its_lease_leaves(
        workspace, db_url, smtp_server_factory):
    a = smtp_server_factory()
    # Two mails a second, claims of 2 s: a pass stops trying after 1 s.
    configure_relays(workspace, db_url, [("a", a, {"rate": 2.0})], lease=2.0)
    emails = _enqueue(db_url, 0, 10)
    settings = load_settings(workspace)
    engine = make_engine(settings.database_url)
    try:
        first = asyncio.run(deliver_outbox(settings, engine))
        rows = list_outbox(engine)
        passes = 1
        while len(a.messages) < 10 and passes < 30:
            asyncio.run(deliver_outbox(settings, engine))
            passes += 1
        done = list_outbox(engine)
    finally:
        engine.dispose()
    assert 1 <= first.sent <= 3 and first.deferred == first.failed == 0
    untried = [r for r in rows if r.status == "queued"]
    assert len(untried) == 10 - first.sent  # handed back as they were: due now, no attempt
    assert all(r.attempts == 0 and r.next_attempt_at is None for r in untried)
    assert sorted(copies(a)) == emails and {r.status for r in done} == {"sent"}


def test_the_one_smtp_relay_out_for_the_system_mails_is_out_for_every_process_until_send(
        workspace, db_url, smtp_server, run):
    smtp_server.reply_for = lambda rcpt, n: "421 4.3.2 too busy, closing"
    configure(workspace, db_url, smtp_server.port, retry_delay=600.0)  # no [[smtp.relays]]
    write_issue(workspace, languages=("en",))
    emails = seed(workspace, ["en"], list_languages=("en",))
    settings = load_settings(workspace)
    engine = make_engine(settings.database_url)
    name = f"127.0.0.1:{smtp_server.port}"
    try:
        _enqueue(db_url, 0, 4)
        first = asyncio.run(deliver_outbox(settings, engine))  # three 421s take it out
        assert (first.sent, first.deferred) == (0, 4)
        out = {o.name: o.reason for o in relays_out(engine)}
        assert out == {name: "answered 421 4.3.2 too busy, closing"}  # for every process
        smtp_server.reply_for = None  # it would take mail now, but it is out: nobody tries
        tried = smtp_server.connections
        _enqueue(db_url, 4, 1)
        assert asyncio.run(deliver_outbox(settings, engine)).total == 0  # a new process
        assert smtp_server.connections == tried and smtp_server.messages == []
        # The operator starts a send: the relay answers, so it is back in for everyone.
        assert run.json("send", "nov", "--yes")["sent"] == 1
        assert relays_out(engine) == []
        assert asyncio.run(deliver_outbox(settings, engine)).sent == 1
    finally:
        engine.dispose()
    assert sorted(copies(smtp_server)) == sorted([*emails, "user4@example.org"])
