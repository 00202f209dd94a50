"""SMTP faults from a misbehaving aiosmtpd server: every delivery ends accounted for, none lost."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.delivery.sender_fixtures import configure, deliveries, seed, write_issue

SETTLED = {"sent", "deferred", "failed", "unknown", "skipped"}


# Every case twice: a relay without PIPELINING, and one offering it (conftest.py).
pytestmark = pytest.mark.usefixtures("both_pipelinings")


def _setup(workspace, db_url, port, n=12, **smtp):
    configure(workspace, db_url, port, **smtp)
    write_issue(workspace)
    return seed(workspace, ["en", "fr", "es"] * (n // 3))


def _copies(server) -> Counter[str]:
    return Counter(rcpts[0] for _s, rcpts, _d in server.messages)


def _everyone_mailed_once(workspace, server, emails: list[str]) -> None:
    """Every subscriber got exactly one copy; only an `unknown` row may have none."""
    rows = deliveries(workspace)
    copies = _copies(server)
    assert set(rows) == set(emails)
    assert set(copies) <= set(emails)
    for email in emails:
        status = rows[email][0]
        assert (status, copies[email]) in {("sent", 1), ("unknown", 1), ("unknown", 0)}, email


def test_421_in_the_middle_of_a_run_reconnects_and_sends_everyone_once(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port, n=30)
    smtp_server.close_after(7)
    result = run.json("send", "nov", "--yes")
    assert result["status"] == "sent" and result["sent"] == 30
    assert _copies(smtp_server) == Counter({e: 1 for e in emails})
    assert smtp_server.connections > 2  # it reconnected


def test_451_is_deferred_and_succeeds_on_retry_in_the_same_run(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port)
    greylisted = set(emails[:4])
    smtp_server.reply_for = lambda rcpt, n: (
        "451 4.7.1 greylisted" if rcpt in greylisted and n == 1 else None)
    result = run.json("send", "nov", "--yes")
    assert result["status"] == "sent" and result["deferred"] == 4 and result["sent"] == 12
    assert _copies(smtp_server) == Counter({e: 1 for e in emails})


def test_550_is_recorded_failed_with_the_reply_and_never_retried(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port)
    smtp_server.reply_for = lambda rcpt, n: "550 5.1.1 mailbox unknown" if rcpt == emails[3] \
        else None
    run.json("send", "nov", "--yes")
    rows = deliveries(workspace)
    assert rows[emails[3]][0] == "failed" and "550 5.1.1 mailbox unknown" in rows[emails[3]][2]
    assert smtp_server.rcpt_attempts[emails[3]] == 1
    assert sum(1 for s, _l, _r in rows.values() if s == "sent") == 11


def test_mailbox_full_552_2_2_is_transient(run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port, n=3)
    smtp_server.reply_for = lambda rcpt, n: "552 5.2.2 mailbox full" if rcpt == emails[0] \
        and n == 1 else None
    run.json("send", "nov", "--yes")
    assert deliveries(workspace)[emails[0]][0] == "sent"


def test_connection_dropped_during_data_is_reported_unknown_and_not_resent(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port)
    smtp_server.lose_reply_after_data = 1  # stored, then the reply is lost
    result = run.json("send", "nov", "--yes")
    assert result["unknown"] == 1 and result["sent"] == 11
    copies = _copies(smtp_server)
    assert copies == Counter({e: 1 for e in emails})  # nobody twice, nobody missing
    status = run.json("issue", "status", "nov")
    assert status["counts"]["unknown"] == 1
    assert "connection lost during DATA" in status["last_errors"][0]["reply"]


def test_resend_unknown_mails_them_again_on_request(run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port, n=6)
    smtp_server.drop_connection_in_data = 1  # read, dropped, not stored
    run.json("send", "nov", "--yes")
    assert len(smtp_server.messages) == 5
    again = run.json("send", "nov", "--yes", "--resend-unknown")
    assert again["sent"] == 1
    assert _copies(smtp_server) == Counter({e: 1 for e in emails})


def test_server_that_stops_answering_stops_the_run_without_failing_anyone(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port, timeout=0.3, connections=2)
    smtp_server.hang = True
    stopped = run("send", "nov", "--yes", ok=False)
    assert stopped.exit_code == 1 and "did not answer" in stopped.output
    assert "Traceback" not in stopped.output
    assert {s for s, _l, _r in deliveries(workspace).values()} <= {"queued", "deferred",
                                                                    "unknown"}
    smtp_server.hang = False
    run("send", "nov", "--yes")
    _everyone_mailed_once(workspace, smtp_server, emails)


def test_relay_down_at_the_start_is_one_clear_line_and_changes_nothing(
        run, workspace, db_url, unused_port):
    _setup(workspace, db_url, unused_port)
    result = run("send", "nov", "--yes", ok=False)
    assert result.exit_code == 1
    assert f"127.0.0.1:{unused_port}" in result.output and "Traceback" not in result.output
    assert deliveries(workspace) == {}


def test_relay_that_dies_mid_run_stops_it_and_a_rerun_finishes_the_list(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port, n=30, connections=1, rate=100.0)
    smtp_server.reply_for = lambda rcpt, n: (smtp_server.stop() if rcpt == emails[10] else None)
    stopped = run("send", "nov", "--yes", ok=False)
    assert stopped.exit_code == 1 and "stopped sending" in stopped.output
    assert not any(s == "failed" for s, _l, _r in deliveries(workspace).values())
    smtp_server.reply_for = None
    smtp_server.start()
    run("send", "nov", "--yes")
    _everyone_mailed_once(workspace, smtp_server, emails)
