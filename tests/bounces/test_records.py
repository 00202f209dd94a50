"""Clean report records: dedup without Message-ID, the delivery mark, the soft-bounce reset,
one line per report in `bounces list`, and postmaster@/abuse@ (both databases)."""

from __future__ import annotations

import mailbox
import smtplib
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from newsletter.bounces.receiver import BounceServer, Processor
from newsletter.db.models import Delivery, utcnow
from newsletter.services import Services
from tests.bounces.messages import dsn
from tests.bounces.test_receiver import deliver, deliveries, events, receiver, suppression, verp
from tests.delivery.sender_fixtures import seed

__all__ = ["receiver"]


def without_message_id(data: bytes) -> bytes:
    return b"\r\n".join(line for line in data.split(b"\r\n")
                        if not line.startswith(b"Message-ID:"))


def test_a_report_without_message_id_counts_once_whatever_trace_headers_it_gained(
        services: Services) -> None:
    processor = Processor.from_settings(services.settings, services.engine)
    emails = seed(services.settings.workspace, ["en"])
    did = deliveries(services, emails, "nov")[emails[0]]
    report = without_message_id(dsn(verp(services, did), emails[0], status="4.2.2"))
    first = processor.process(b"Received: from mx1.example.net by a\r\n" + report)
    # The same report, relayed once more and fetched from a mailbox: other trace headers.
    again = processor.process(b"Delivered-To: bounces@bounces.example.org\r\n"
                              b"Received: from mx2.example.net by b\r\n" + report)
    assert (first.action, again.action) == ("counted", "duplicate")
    assert len(events(services, "bounce")) == 1


def test_the_delivery_row_is_marked_with_the_bounce(services: Services,
                                                    receiver: BounceServer) -> None:
    emails = seed(services.settings.workspace, ["en", "en"])
    ids = deliveries(services, emails, "nov")
    deliver(receiver, verp(services, ids[emails[0]]),
            dsn(verp(services, ids[emails[0]]), emails[0], status="5.0.0",
                diagnostic="smtp; 550-5.7.1 [203.0.113.7] likely unsolicited\n 550 5.7.1 mail"))
    with services.engine.connect() as conn:
        replies = dict(conn.execute(select(Delivery.id, Delivery.last_reply)).all())
    assert replies[ids[emails[0]]] == ("bounced: policy 5.0.0 smtp; 550-5.7.1 [203.0.113.7] "
                                       "likely unsolicited 550 5.7.1 mail")
    assert replies[ids[emails[1]]] is None
    assert suppression(services, emails[0]) is None


def test_a_later_successful_delivery_resets_the_soft_bounce_count(services: Services) -> None:
    processor = Processor.from_settings(services.settings, services.engine)
    emails = seed(services.settings.workspace, ["en"])
    ids = [deliveries(services, emails, f"issue-{n}")[emails[0]] for n in range(10)]
    start = utcnow() - timedelta(days=3)
    with services.engine.begin() as conn:  # sent one after the other, an hour apart
        for n, did in enumerate(ids):
            conn.execute(update(Delivery).where(Delivery.id == did)
                         .values(sent_at=start + timedelta(hours=n)))

    def soft(did: int) -> str:
        return processor.process(dsn(verp(services, did), emails[0], status="4.2.2")).note

    assert [soft(did) for did in ids[:4]] == [f"{n} of 5 within 7 days" for n in (1, 2, 3, 4)]
    # ids[4] got through (no report); the next soft bounces count from 1 again.
    assert [soft(did) for did in ids[5:9]] == [f"{n} of 5 within 7 days" for n in (1, 2, 3, 4)]
    assert suppression(services, emails[0]) is None
    assert processor.process(dsn(verp(services, ids[9]), emails[0], status="4.2.2")).action \
        == "suppressed"


def test_bounces_list_shows_one_line_per_report_even_with_folded_fields(
        run, services: Services, tmp_path: Path) -> None:
    emails = seed(services.settings.workspace, ["en", "en"])
    ids = deliveries(services, emails, "nov")
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for address in emails:
        box.add(dsn(verp(services, ids[address]), address, status="5.1.1\n (folded)",
                    diagnostic="smtp; 550-5.1.1 user\n 550 5.1.1 unknown"))
    run("bounces", "process", str(tmp_path / "Maildir"))
    lines = run("bounces", "list").output.strip().splitlines()
    assert len(lines) == 2 and all(" hard      5.1.1 " in line for line in lines)


def test_postmaster_and_abuse_are_accepted_kept_and_never_acted_on(
        services: Services, receiver: BounceServer) -> None:
    emails = seed(services.settings.workspace, ["en"])
    did = deliveries(services, emails, "nov")[emails[0]]
    # Even a hard bounce naming a real delivery, sent to postmaster@, changes nothing.
    report = dsn(verp(services, did), emails[0])
    with smtplib.SMTP(receiver.host, receiver.port, timeout=10) as client:
        for rcpt in ("postmaster@bounces.example.org", "Abuse@Bounces.Example.org"):
            client.ehlo()
            assert client.mail("someone@example.net")[0] == 250
            assert client.rcpt(rcpt)[0] == 250
            code, reply = client.data(report)
            assert code == 250 and b"kept for the postmaster" in reply
    kept = list(mailbox.Maildir(services.settings.workspace / "bounces" / "postmaster",
                                create=False))
    assert sorted(m["X-Bounce-Envelope-To"] for m in kept) == [
        "Abuse@Bounces.Example.org", "postmaster@bounces.example.org"]
    assert suppression(services, emails[0]) is None
    assert events(services, "bounce", "complaint", "bounce-unmatched") == []
