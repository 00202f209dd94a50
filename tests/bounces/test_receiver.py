"""Bounces end to end: a real SMTP receiver, real DSN and ARF messages, both databases."""

from __future__ import annotations

import mailbox
import smtplib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from newsletter.bounces.policy import mask_address
from newsletter.bounces.receiver import BounceServer, Processor
from newsletter.db.models import (
    Delivery,
    Event,
    Issue,
    MailingList,
    Subscriber,
    Subscription,
    Suppression,
    utcnow,
)
from newsletter.delivery.verp import encode_verp
from newsletter.services import Services
from newsletter.tokens import Signer
from tests.bounces.messages import arf, dsn
from tests.conftest import SECRET
from tests.delivery.sender_fixtures import seed

SIGNER = Signer(SECRET)


@pytest.fixture
def receiver(services: Services) -> Iterator[BounceServer]:
    """The bounce receiver on a free port, writing to the test database."""
    processor = Processor.from_settings(services.settings, services.engine)
    with BounceServer(processor, port=0) as server:
        yield server


def deliveries(services: Services, emails: list[str], slug: str) -> dict[str, int]:
    """An issue that went to these subscribers of list `news`: email -> delivery id."""
    now = utcnow()
    with services.engine.begin() as conn:
        list_id = conn.scalar(select(MailingList.id).where(MailingList.slug == "news"))
        issue_id = conn.execute(insert(Issue).values(
            slug=slug, list_id=list_id, status="sent", created_at=now, data={})
            .returning(Issue.id)).scalar_one()
        found = {}
        for address in emails:
            sid = conn.scalar(select(Subscriber.id).where(Subscriber.email == address))
            found[address] = conn.execute(insert(Delivery).values(
                issue_id=issue_id, subscriber_id=sid, list_id=list_id, language="en",
                status="sent", attempts=1, created_at=now, sent_at=now)
                .returning(Delivery.id)).scalar_one()
    return found


def verp(services: Services, delivery_id: int) -> str:
    return encode_verp(services.settings, SIGNER, delivery_id)


def deliver(server: BounceServer, rcpt: str, data: bytes) -> None:
    """Hand a report to the receiver as a remote MTA does: null sender, one recipient."""
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.sendmail("", [rcpt], data)


def suppression(services: Services, address: str) -> str | None:
    """The suppression reason for an address, or None."""
    with services.engine.connect() as conn:
        return conn.scalar(select(Suppression.reason).where(
            Suppression.email_hash == services.keyring.hash_address(address)))


def events(services: Services, *kinds: str) -> list[tuple[str, dict]]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(Event.kind, Event.data).where(Event.kind.in_(kinds))
                            .order_by(Event.id)).all()
    return [(k, d) for k, d in rows]


def test_hard_bounce_suppresses_and_the_next_send_skips_the_address(
        run, workspace: Path, db_url: str, services: Services, receiver: BounceServer) -> None:
    from newsletter.delivery.capture import CaptureServer
    from tests.delivery.sender_fixtures import configure, write_issue

    with CaptureServer(workspace / "inbox", port=0) as capture:
        configure(workspace, db_url, capture.port)
        emails = seed(workspace, ["en", "fr", "es"])
        write_issue(workspace, "nov")
        assert run.json("send", "nov", "--yes")["sent"] == 3
        box = mailbox.Maildir(workspace / "inbox", create=False)
        return_path = {m["Delivered-To"]: m["Return-Path"].strip("<>") for m in box}
        # The bounce goes to the very envelope sender the newsletter went out with.
        deliver(receiver, return_path[emails[1]], dsn(return_path[emails[1]], emails[1]))
        assert suppression(services, emails[1]) == "bounce"
        write_issue(workspace, "dec")
        assert run.json("send", "dec", "--yes")["sent"] == 2
        got = [m["Delivered-To"] for m in box if "dec" in (m["Feedback-ID"] or "")]
    assert sorted(got) == sorted([emails[0], emails[2]])
    [(kind, data)] = events(services, "bounce")
    assert data["kind"] == "hard" and data["issue"] == "nov" and data["status"] == "5.1.1"
    assert data["outcome"] == "suppressed" and "user unknown" in data["diagnostic"]


def test_policy_block_5_7_1_is_recorded_but_does_not_suppress(
        services: Services, receiver: BounceServer) -> None:
    emails = seed(services.settings.workspace, ["en"])
    did = deliveries(services, emails, "nov")[emails[0]]
    deliver(receiver, verp(services, did), dsn(verp(services, did), emails[0], status="5.7.1",
                                               diagnostic="smtp; 550 5.7.1 blocked by policy"))
    assert suppression(services, emails[0]) is None
    [(_kind, data)] = events(services, "bounce")
    assert data["kind"] == "policy" and data["outcome"] == "recorded"


def test_mailbox_full_5_2_2_counts_as_a_soft_bounce(
        services: Services, receiver: BounceServer) -> None:
    emails = seed(services.settings.workspace, ["en"])
    did = deliveries(services, emails, "nov")[emails[0]]
    deliver(receiver, verp(services, did), dsn(verp(services, did), emails[0], status="5.2.2"))
    assert suppression(services, emails[0]) is None
    [(_kind, data)] = events(services, "bounce")
    assert data["kind"] == "soft" and data["outcome"] == "counted"
    assert data["note"] == "1 of 5 within 7 days"


def test_five_soft_bounces_within_the_window_suppress_and_four_do_not(
        services: Services) -> None:
    processor = Processor.from_settings(services.settings, services.engine)
    emails = seed(services.settings.workspace, ["en"])
    ids = [deliveries(services, emails, f"issue-{n}")[emails[0]] for n in range(6)]
    now = utcnow()

    def bounce(did: int, days_ago: float) -> str:
        data = dsn(verp(services, did), emails[0], status="4.2.2", action="failed")
        return processor.process(data, now=now - timedelta(days=days_ago)).action

    assert bounce(ids[0], 20) == "counted"  # long before the 7-day window
    assert [bounce(did, 4 - n) for n, did in enumerate(ids[1:5])] == ["counted"] * 4
    assert suppression(services, emails[0]) is None
    assert bounce(ids[5], 0) == "suppressed"
    assert suppression(services, emails[0]) == "bounce"


def test_reports_about_one_delivery_count_as_one_soft_bounce(services: Services) -> None:
    processor = Processor.from_settings(services.settings, services.engine)
    emails = seed(services.settings.workspace, ["en"])
    did = deliveries(services, emails, "nov")[emails[0]]
    notes = [processor.process(dsn(verp(services, did), emails[0], status="4.4.7",
                                   action="delayed")).note for _ in range(6)]
    assert notes == ["1 of 5 within 7 days"] * 6
    assert suppression(services, emails[0]) is None


def test_complaint_unsubscribes_from_that_list_and_suppresses(
        services: Services, receiver: BounceServer) -> None:
    emails = seed(services.settings.workspace, ["en", "fr"])
    did = deliveries(services, emails, "nov")[emails[0]]
    deliver(receiver, "bounces@bounces.example.org", arf(verp(services, did), emails[0]))
    assert suppression(services, emails[0]) == "complaint"
    assert suppression(services, emails[1]) is None
    with services.engine.connect() as conn:
        statuses = dict(conn.execute(
            select(Subscriber.email, Subscription.status)
            .join(Subscription, Subscription.subscriber_id == Subscriber.id)).all())
    assert statuses == {emails[0]: "unsubscribed", emails[1]: "confirmed"}
    [(_kind, data)] = events(services, "complaint")
    assert data["outcome"] == "suppressed" and data["note"] == "unsubscribed from news"
    [(_kind, left)] = events(services, "unsubscribe")
    assert left == {"via": "complaint"}


def test_forged_verp_token_is_unmatched_and_suppresses_nobody(
        services: Services, receiver: BounceServer) -> None:
    emails = seed(services.settings.workspace, ["en"])
    did = deliveries(services, emails, "nov")[emails[0]]
    forged = encode_verp(services.settings, Signer("attacker-key-0000000000"), did)
    deliver(receiver, forged, dsn(forged, emails[0]))
    assert suppression(services, emails[0]) is None
    assert events(services, "bounce", "complaint") == []
    [(_kind, data)] = events(services, "bounce-unmatched")
    assert data["note"] == "no valid VERP token" and data["delivery"] is None
    assert data["recipients"] == [mask_address(emails[0])]


def test_unparseable_message_is_accepted_and_recorded_as_unmatched(
        services: Services, receiver: BounceServer) -> None:
    deliver(receiver, "bounces+garbage@bounces.example.org", b"\x00\xff not a report at all")
    [(_kind, data)] = events(services, "bounce-unmatched")
    assert data["kind"] == "unknown"


def test_other_recipients_are_refused_with_550_so_it_is_no_relay(
        receiver: BounceServer) -> None:
    for rcpt in ("someone@example.net", "bounces@example.org", "news+x@bounces.example.org",
                 "bounces+@bounces.example.org"):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            deliver(receiver, rcpt, b"Subject: hi\r\n\r\nhello\r\n")
        assert refused.value.recipients[rcpt][0] == 550
    assert receiver.count == 0


def test_the_same_report_twice_counts_once(services: Services, receiver: BounceServer) -> None:
    emails = seed(services.settings.workspace, ["en"])
    did = deliveries(services, emails, "nov")[emails[0]]
    data = dsn(verp(services, did), emails[0], status="4.2.2", message_id="<same@mx>")
    deliver(receiver, verp(services, did), data)
    deliver(receiver, verp(services, did), data)
    assert len(events(services, "bounce")) == 1
    hard = dsn(verp(services, did), emails[0], message_id="<hard@mx>")
    deliver(receiver, verp(services, did), hard)
    deliver(receiver, verp(services, did), hard)
    assert [d["kind"] for _k, d in events(services, "bounce")] == ["soft", "hard"]
    assert receiver.count == 4


def _maildir(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(path, create=True)
    for data in messages:
        box.add(data)
    return path


def test_bounces_process_reads_a_maildir_once(run, services: Services, tmp_path: Path) -> None:
    emails = seed(services.settings.workspace, ["en", "en", "en"])
    ids = deliveries(services, emails, "nov")
    folder = _maildir(tmp_path / "Maildir", [
        dsn(verp(services, ids[emails[0]]), emails[0]),
        dsn(verp(services, ids[emails[1]]), emails[1], status="5.7.1"),
        arf(verp(services, ids[emails[2]]), emails[2]),
        b"Subject: out of office\r\n\r\nI am away.\r\n",
    ])
    first = run.json("bounces", "process", str(folder))
    assert first["reports"] == 4
    assert first["by_kind"] == {"autoreply": 1, "complaint": 1, "hard": 1, "policy": 1}
    assert first["by_action"] == {"recorded": 1, "suppressed": 2, "unmatched": 1}
    assert suppression(services, emails[0]) == "bounce"
    assert suppression(services, emails[2]) == "complaint"
    again = run.json("bounces", "process", str(folder))
    assert again["by_action"] == {"duplicate": 4}
    listed = run.json("bounces", "list", "--since", "1")
    assert len(listed) == 4 and {r["address"] for r in listed} >= {mask_address(emails[0])}
    text = run("bounces", "list").output
    assert "suppressed" in text and "policy" in text


def test_bounces_process_reads_mbox_and_eml_files(run, services: Services,
                                                  tmp_path: Path) -> None:
    emails = seed(services.settings.workspace, ["en", "en"])
    ids = deliveries(services, emails, "nov")
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    box.add(dsn(verp(services, ids[emails[0]]), emails[0]))
    box.close()
    eml = tmp_path / "one.eml"
    eml.write_bytes(dsn(verp(services, ids[emails[1]]), emails[1], status="4.2.2"))
    output = run("bounces", "process", str(tmp_path / "bounces.mbox"), str(eml)).output
    assert "2 report(s): 1 hard, 1 soft. Actions: 1 counted, 1 suppressed." in output
    assert "bounces.mbox#1" in output and mask_address(emails[0]) in output


def test_user_mistakes_give_one_line_and_no_traceback(run, tmp_path: Path) -> None:
    missing = run("bounces", "process", str(tmp_path / "nope"), ok=False)
    assert missing.exit_code == 1
    assert missing.output.strip() == f"Error: {tmp_path / 'nope'}: no such file or folder"
    plain = tmp_path / "folder"
    plain.mkdir()
    assert "not a Maildir" in run("bounces", "process", str(plain), ok=False).output
    bad_port = run("bounces", "serve", "--port", "70000", ok=False)
    assert bad_port.exit_code == 2 and "70000" in bad_port.output
    assert "Traceback" not in bad_port.output + missing.output


def test_serve_on_a_taken_port_says_so_in_one_line(run, receiver: BounceServer) -> None:
    taken = run("bounces", "serve", "--port", str(receiver.port), ok=False)
    assert taken.exit_code == 1
    assert taken.output.startswith(f"Error: cannot listen on 127.0.0.1:{receiver.port}")
    assert len(taken.output.strip().splitlines()) == 1


def test_soft_limit_and_window_come_from_newsletter_toml(
        workspace: Path, db_url: str, services: Services) -> None:
    from newsletter.config import ConfigError, load_settings
    from tests.conftest import write_config

    write_config(workspace, db_url, "\n[bounces]\nsoft_limit = 2\nsoft_days = 1.5\n")
    processor = Processor.from_settings(load_settings(workspace), services.engine)
    emails = seed(workspace, ["en"])
    ids = [deliveries(services, emails, f"issue-{n}")[emails[0]] for n in range(2)]
    outcomes = [processor.process(dsn(verp(services, did), emails[0], status="4.2.2"))
                for did in ids]
    assert [o.action for o in outcomes] == ["counted", "suppressed"]
    assert outcomes[1].note == "2 soft bounces within 1.5 days"
    write_config(workspace, db_url, "\n[bounces]\nsoft_limit = 0\n")
    with pytest.raises(ConfigError, match=r"\[bounces\] soft_limit"):
        Processor.from_settings(load_settings(workspace), services.engine)


def test_unmatched_reports_are_kept_in_a_maildir_when_asked(
        workspace: Path, services: Services) -> None:
    from newsletter.config import load_settings

    settings = load_settings(workspace, overrides={"bounces": {"keep_unmatched": "unmatched"}})
    processor = Processor.from_settings(settings, services.engine)
    outcome = processor.process(b"Subject: who am I\r\n\r\n?\r\n",
                                ["bounces+x@bounces.example.org"])
    assert outcome.action == "unmatched"
    [kept] = list(mailbox.Maildir(workspace / "unmatched", create=False))
    assert kept["X-Bounce-Envelope-To"] == "bounces+x@bounces.example.org"
    assert kept["Subject"] == "who am I"
