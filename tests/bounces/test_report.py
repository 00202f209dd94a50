"""Bounces and complaints are tied to their delivery by VERP and classified per STANDARDS.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.bounces.report import classify_status, parse_bounce
from newsletter.config import load_settings
from newsletter.delivery.verp import encode_verp
from newsletter.tokens import Signer

SECRET = "test-secret-key-0123456789"
SIGNER = Signer(SECRET)


@pytest.fixture
def verp(tmp_path: Path) -> str:
    settings = load_settings(tmp_path, environ={}, overrides={"newsletter": {"secret_key": SECRET}})
    return encode_verp(settings, SIGNER, 4242)


def report(report_type: str, to: str, human: str, machine_type: str, machine: str,
           original_type: str, original: str) -> bytes:
    """A multipart/report (RFC 6522) as receivers send them, CRLF line endings."""
    return f"""From: MAILER-DAEMON@mx.example.net
To: {to}
Subject: Report
MIME-Version: 1.0
Content-Type: multipart/report; report-type={report_type}; boundary="B1"

--B1
Content-Type: text/plain

{human}

--B1
Content-Type: {machine_type}

{machine}

--B1
Content-Type: {original_type}

{original}
--B1--
""".replace("\n", "\r\n").encode()


def dsn(verp: str, status: str = "5.1.1", action: str = "failed",
        diagnostic: str = "smtp; 550 5.1.1 <amelie@example.net>: user unknown") -> bytes:
    machine = f"""Reporting-MTA: dns; mx.example.net
Arrival-Date: Thu, 26 Nov 2026 03:00:00 +0000

Final-Recipient: rfc822; amelie@example.net
Original-Recipient: rfc822;amelie@example.net
Action: {action}
Status: {status}
Diagnostic-Code: {diagnostic}
"""
    original = f"""Return-Path: <{verp}>
From: Coalition <news@example.org>
To: amelie@example.net
Subject: Nouvelles
"""
    return report("delivery-status", verp, "Your message could not be delivered.",
                  "message/delivery-status", machine, "text/rfc822-headers", original)


def test_hard_dsn_names_the_delivery_and_the_address(verp: str) -> None:
    found = parse_bounce(dsn(verp), SIGNER, envelope_to=[verp])
    assert found.kind == "hard" and found.source == "dsn"
    assert found.delivery_id == 4242
    assert found.recipients == ("amelie@example.net",)
    assert found.status == "5.1.1" and found.action == "failed"
    assert "user unknown" in found.diagnostic


@pytest.mark.parametrize(("status", "action", "kind"), [
    ("5.2.2", "failed", "soft"),  # mailbox full is transient even as 5.2.2
    ("4.2.2", "failed", "soft"),
    ("4.4.7", "delayed", "soft"),
    ("5.7.1", "failed", "policy"),  # a block, not proof of a bad address
    ("5.1.10", "failed", "hard"),
])
def test_dsn_status_is_classified_per_the_standards(
        verp: str, status: str, action: str, kind: str) -> None:
    assert parse_bounce(dsn(verp, status, action), SIGNER).kind == kind
    assert classify_status(status, action) == kind


def test_delivery_is_found_from_the_to_header_or_the_returned_headers(verp: str) -> None:
    assert parse_bounce(dsn(verp), SIGNER).delivery_id == 4242
    without_to = dsn(verp).replace(f"To: {verp}\r\n".encode(), b"To: bounces@example.org\r\n", 1)
    assert parse_bounce(without_to, SIGNER).delivery_id == 4242


def test_forged_verp_gives_no_delivery(verp: str) -> None:
    forged = encode_verp(load_settings(Path("/nonexistent"), environ={}, overrides={
        "newsletter": {"secret_key": "attacker-secret-key-0000"}}), Signer("attacker-0000000"), 1)
    found = parse_bounce(dsn(forged), SIGNER, envelope_to=[forged])
    assert found.kind == "hard" and found.delivery_id is None


def test_arf_complaint_is_a_complaint_tied_to_the_original_delivery(verp: str) -> None:
    machine = """Feedback-Type: abuse
User-Agent: SomeISP-FBL/1.0
Version: 1
Original-Rcpt-To: <amelie@example.net>
"""
    original = f"""Return-Path: <{verp}>
From: Coalition <news@example.org>
To: amelie@example.net
Subject: Nouvelles

Hello"""
    data = report("feedback-report", "abuse@example.org", "This is an email abuse report.",
                  "message/feedback-report", machine, "message/rfc822", original)
    found = parse_bounce(data, SIGNER)
    assert found.kind == "complaint" and found.source == "arf"
    assert found.delivery_id == 4242
    assert found.recipients == ("amelie@example.net",)
    assert found.diagnostic == "abuse"


def test_non_standard_bounce_falls_back_to_flufl_bounce(verp: str) -> None:
    data = f"""From: MAILER-DAEMON@old.example.net
To: {verp}
Subject: failure notice

Hi. This is the qmail-send program at old.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<carl@old.example.net>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Return-Path: <{verp}>
Subject: Coalition news
""".replace("\n", "\r\n").encode()
    found = parse_bounce(data, SIGNER, envelope_to=[verp])
    assert found.source == "flufl" and found.kind == "hard"
    assert found.recipients == ("carl@old.example.net",)
    assert found.delivery_id == 4242


@pytest.mark.parametrize("data", [b"", b"\x00\xff garbage", b"Subject: hi\r\n\r\nnothing here",
                                  b"Content-Type: multipart/report; report-type=delivery-status;"
                                  b" boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-"
                                  b"status\r\n\r\nnonsense\r\n--x--"])
def test_malformed_input_is_unknown_not_an_exception(data: bytes) -> None:
    found = parse_bounce(data, SIGNER)
    assert found.kind == "unknown" and found.delivery_id is None


@pytest.mark.parametrize(("status", "diagnostic", "kind"), [
    # The specific code in the remote server's reply beats a generic Status.
    ("5.0.0", "smtp; 550-5.7.1 [203.0.113.7] this message is likely unsolicited mail", "policy"),
    ("5.0.0", "smtp; 552 Quota exceeded (mailbox for user is full)", "soft"),
    ("5.0.0", "smtp; 552 Requested mail action aborted: exceeded storage allocation", "soft"),
    ("5.0.0", "smtp; 550 Postfach des Empfaengers ist voll", "soft"),
    ("5.0.0", "smtp; 552 La boîte aux lettres du destinataire est pleine", "soft"),
    ("5.0.0", "smtp; 552 El buzón del destinatario está lleno", "soft"),
    ("5.0.0", "smtp; 550 Message refusé pour cause de contenu indésirable", "policy"),
    ("5.0.0", "smtp; 554 Mensaje rechazado: su servidor figura en una lista negra", "policy"),
    ("5.0.0", "smtp; 554 Nachricht als unerwünscht abgelehnt", "policy"),
    ("5.0.0", "smtp; 550 Benutzer unbekannt", "hard"),
    ("5.0.0", "smtp; 550 5.0.0 Usuario desconocido", "hard"),
    ("5.0.0", "smtp; 550 utilisateur inconnu", "hard"),
    ("5.0.0", "smtp; 550 sorry, try again", "hard"),
    # An IP address is not an enhanced code (4.5.6 would have been soft).
    ("5.0.0", "smtp; 550 rejected by [4.5.6.7]", "hard"),
    ("5.1.1", "smtp; 550 5.1.1 user unknown, mailbox full of spam", "hard"),
])
def test_the_most_specific_source_decides(verp: str, status: str, diagnostic: str,
                                          kind: str) -> None:
    found = parse_bounce(dsn(verp, status, diagnostic=diagnostic), SIGNER)
    assert (found.kind, found.status) == (kind, status)


@pytest.mark.parametrize(("words", "kind"), [
    ("Your message could not be delivered: the recipient's mailbox is full.", "soft"),
    ("The user is over quota.", "soft"),
    ("Quota exceeded for this mailbox.", "soft"),
])
def test_words_in_the_report_text_decide_when_the_codes_do_not(verp: str, words: str,
                                                                kind: str) -> None:
    data = dsn(verp, "5.0.0", diagnostic="smtp; 550 Requested action not taken").replace(
        b"Your message could not be delivered.", words.encode())
    assert parse_bounce(data, SIGNER).kind == kind


def test_status_is_one_line_even_when_the_field_is_folded(verp: str) -> None:
    found = parse_bounce(dsn(verp, "5.1.1\n (user unknown)"), SIGNER)
    assert found.status == "5.1.1" and found.kind == "hard"


def test_original_recipient_stands_in_for_an_x400_final_recipient(verp: str) -> None:
    data = dsn(verp).replace(b"Final-Recipient: rfc822; amelie@example.net",
                             b"Final-Recipient: X400; /C=FR/P=CORP/O=EXCHANGE/CN=AMELIE")
    assert parse_bounce(data, SIGNER).recipients == ("amelie@example.net",)


def test_a_dsn_with_a_non_standard_action_falls_back_to_flufl_bounce(verp: str) -> None:
    data = dsn(verp, status="", action="failure", diagnostic="").replace(
        b"Subject: Report\r\n", b"Subject: Report\r\nX-Failed-Recipients: amelie@example.net\r\n")
    found = parse_bounce(data, SIGNER)
    assert (found.kind, found.source, found.recipients) == ("hard", "flufl",
                                                            ("amelie@example.net",))


def test_out_of_office_replies_are_auto_replies(verp: str) -> None:
    data = (f"From: amelie@example.net\r\nTo: {verp}\r\nSubject: Abwesenheitsnotiz\r\n"
            "Auto-Submitted: auto-replied\r\n\r\nIch bin nicht im Buero.\r\n").encode()
    found = parse_bounce(data, SIGNER)
    assert (found.kind, found.delivery_id) == ("autoreply", 4242)


def test_a_text_bounce_is_read_up_to_the_copy_of_our_message(verp: str) -> None:
    data = f"""From: Mail Delivery Subsystem <MAILER-DAEMON@old.example.net>
To: {verp}
Subject: Returned mail: see transcript for details
X-Failed-Recipients: amelie@example.net

   ----- The following addresses had permanent fatal errors -----
<amelie@example.net>
    (reason: 552 mailbox is full)

   ----- Original message follows -----
Return-Path: <{verp}>
Subject: Our policy on spam, blocked accounts and unknown users
""".replace("\n", "\r\n").encode()
    found = parse_bounce(data, SIGNER)
    assert (found.kind, found.source, found.reason) == ("soft", "flufl", "text words")
