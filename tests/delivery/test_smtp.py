"""One SMTP client for every mail: newsletter, outbox and test copies read replies the same way.

Each caller runs for real against the fault-injecting SMTP server: `newsletter send`, the
outbox worker (`deliver_outbox`) and `newsletter send --test-to`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.models import utcnow
from newsletter.outbox import deliver_outbox, enqueue, list_outbox
from tests.delivery.sender_fixtures import configure, deliveries, seed, write_issue

READER = "reader0@example.org"
MESSAGE = (b"From: news@example.org\r\nTo: reader0@example.org\r\nSubject: Confirm\r\n\r\n"
           b"Please confirm.\r\n.leading dot line\r\n")


def _newsletter(run, workspace: Path) -> tuple[str, str]:
    run.json("send", "nov", "--yes")
    status, _lang, reply = deliveries(workspace)[READER]
    return status, reply or ""


def _outbox(run, workspace: Path) -> tuple[str, str]:
    settings = load_settings(workspace)
    engine = make_engine(settings.database_url)
    try:
        enqueue(engine, "confirm", READER, "news@example.org", MESSAGE)
        asyncio.run(deliver_outbox(settings, engine))
        [row] = list_outbox(engine)
    finally:
        engine.dispose()
    return row.status, row.last_error or ""


def _test_send(run, workspace: Path) -> tuple[str, str]:
    copies = run.json("send", "nov", "--test-to", READER)
    assert len(copies) == 3  # one per language; the server answers all three alike
    assert len({(c["status"], c["reply"]) for c in copies}) == 1
    return copies[0]["status"], copies[0]["reply"]


CALLERS: dict[str, Callable[..., tuple[str, str]]] = {
    "newsletter": _newsletter, "outbox": _outbox, "test-send": _test_send}


def _setup(workspace: Path, db_url: str, port: int) -> None:
    # A deferred newsletter delivery is due in an hour: the run ends and leaves it deferred.
    configure(workspace, db_url, port, retry_delay=3600.0, retry_window=1.0)
    write_issue(workspace)
    seed(workspace, ["en"])


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize(("stage", "reply", "expected"), [
    ("rcpt", "550 5.1.1 no such user", "failed"),
    ("rcpt", "451 4.3.0 greylisted, try later", "deferred"),
    ("data", "554 5.7.1 message rejected as spam", "failed"),
    ("data", "452 4.3.1 insufficient storage", "deferred"),
    ("data", "552 5.2.2 mailbox full", "deferred"),  # x.2.2 is transient even as 5yz
    ("rcpt", "552 5.2.2 mailbox full", "deferred"),
])
def test_the_same_reply_means_the_same_thing_for_every_kind_of_mail(
        run, workspace, db_url, smtp_server, caller, stage, reply, expected):
    _setup(workspace, db_url, smtp_server.port)
    if stage == "rcpt":
        smtp_server.reply_for = lambda rcpt, n: reply if rcpt == READER else None
    else:
        smtp_server.data_reply_for = lambda rcpts, n: reply if READER in rcpts else None
    status, text = CALLERS[caller](run, workspace)
    assert (status, text) == (expected, reply)
    assert smtp_server.messages == []


@pytest.mark.parametrize("caller", list(CALLERS))
def test_an_accepted_message_is_sent_for_every_kind_of_mail(
        run, workspace, db_url, smtp_server, caller):
    _setup(workspace, db_url, smtp_server.port)
    status, _reply = CALLERS[caller](run, workspace)
    assert status == "sent"
    assert {rcpts[0] for _s, rcpts, _d in smtp_server.messages} == {READER}


def test_an_outbox_mail_arrives_byte_for_byte_with_its_leading_dot_line(
        run, workspace, db_url, smtp_server):
    _setup(workspace, db_url, smtp_server.port)
    assert _outbox(run, workspace)[0] == "sent"
    [(_sender, _rcpts, data)] = smtp_server.messages
    assert data.replace(b"\r\n", b"\n") == MESSAGE.replace(b"\r\n", b"\n")


def _enqueue_many(workspace: Path, n: int) -> None:
    engine = make_engine(load_settings(workspace).database_url)
    for i in range(n):
        enqueue(engine, "confirm", f"user{i}@example.org", "news@example.org", MESSAGE)
    engine.dispose()


def _deliver(workspace: Path, later: timedelta = timedelta(0)):
    settings = load_settings(workspace)
    engine = make_engine(settings.database_url)
    try:
        report = asyncio.run(deliver_outbox(settings, engine, now=utcnow() + later))
        return report, {r.recipient: r for r in list_outbox(engine)}
    finally:
        engine.dispose()


def test_a_421_mid_batch_reconnects_and_the_outbox_carries_on(
        run, workspace, db_url, smtp_server):
    configure(workspace, db_url, smtp_server.port)
    _enqueue_many(workspace, 5)
    smtp_server.close_after(2)  # the third MAIL FROM gets 421 and the connection closes
    report, rows = _deliver(workspace)
    assert (report.sent, report.deferred, report.failed) == (4, 1, 0)
    assert smtp_server.connections == 2  # one reconnect, not one per message
    assert rows["user2@example.org"].status == "deferred"
    assert rows["user2@example.org"].last_error.startswith("421 4.3.2")
    report, rows = _deliver(workspace, later=timedelta(minutes=2))
    assert report.sent == 1 and {r.status for r in rows.values()} == {"sent"}
    assert sorted(rcpts[0] for _s, rcpts, _d in smtp_server.messages) == [
        f"user{i}@example.org" for i in range(5)]


def test_a_dropped_connection_defers_the_outbox_mail_and_the_rest_still_go(
        run, workspace, db_url, smtp_server):
    configure(workspace, db_url, smtp_server.port)
    _enqueue_many(workspace, 3)
    smtp_server.drop_connection_in_data = 1
    report, rows = _deliver(workspace)
    assert (report.sent, report.deferred) == (2, 1)
    assert rows["user0@example.org"].status == "deferred"
    assert "connection lost" in rows["user0@example.org"].last_error
    report, rows = _deliver(workspace, later=timedelta(minutes=2))
    assert report.sent == 1 and len(smtp_server.messages) == 3


def test_a_dropped_connection_during_a_test_send_is_reported_and_the_next_copies_go(
        run, workspace, db_url, smtp_server):
    _setup(workspace, db_url, smtp_server.port)
    smtp_server.drop_connection_in_data = 1
    copies = run.json("send", "nov", "--test-to", READER)
    assert [c["status"] for c in copies] == ["unknown", "sent", "sent"]
    assert copies[0]["reply"].startswith("connection lost during DATA")
    assert len(smtp_server.messages) == 2
    shown = run("send", "nov", "--test-to", READER).output
    assert "test copy (en) to reader0@example.org:" in shown and "Traceback" not in shown


def test_a_relay_that_is_down_stops_a_test_send_with_one_line(run, workspace, db_url,
                                                               unused_port):
    _setup(workspace, db_url, unused_port)
    result = run("send", "nov", "--test-to", READER, ok=False)
    assert result.exit_code == 1
    assert "cannot send test copies: the SMTP relay at 127.0.0.1" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_there_is_one_smtp_client_in_the_package():
    package = Path(__file__).resolve().parents[2] / "newsletter"
    importing = sorted(
        str(path.relative_to(package)) for path in package.rglob("*.py")
        if re.search(r"^\s*(import|from)\s+aiosmtplib\b", path.read_text("utf-8"), re.M))
    assert importing == ["delivery/relay.py", "delivery/smtp.py", "delivery/wire.py"]
