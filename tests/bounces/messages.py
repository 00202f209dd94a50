"""Bounce and complaint messages as receiving servers write them, for the bounce tests.

`dsn(...)` is an RFC 3464 delivery status notification, `arf(...)` an RFC 5965 feedback report,
each with the original message's headers (and its VERP Return-Path) attached.
"""

from __future__ import annotations

import itertools

_ids = itertools.count(1)


def _report(report_type: str, to: str, human: str, machine_type: str, machine: str,
            original_type: str, original: str, message_id: str | None) -> bytes:
    mid = message_id or f"<report-{next(_ids)}@mx.example.net>"
    return f"""From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: {to}
Subject: Delivery report
Message-ID: {mid}
MIME-Version: 1.0
Content-Type: multipart/report; report-type={report_type}; boundary="R1"

--R1
Content-Type: text/plain

{human}

--R1
Content-Type: {machine_type}

{machine}

--R1
Content-Type: {original_type}

{original}
--R1--
""".replace("\n", "\r\n").encode()


def dsn(verp: str, recipient: str, status: str = "5.1.1", action: str = "failed",
        diagnostic: str = "smtp; 550 5.1.1 user unknown", message_id: str | None = None) -> bytes:
    """A DSN for one recipient, sent to the VERP address."""
    machine = f"""Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Diagnostic-Code: {diagnostic}
"""
    original = f"""Return-Path: <{verp}>
From: Test Network <news@example.org>
To: {recipient}
Subject: Coalition news
"""
    return _report("delivery-status", verp, "Your message could not be delivered.",
                   "message/delivery-status", machine, "text/rfc822-headers", original,
                   message_id)


def arf(verp: str, recipient: str, to: str = "bounces@bounces.example.org") -> bytes:
    """An abuse complaint from a mailbox provider's feedback loop."""
    machine = f"""Feedback-Type: abuse
User-Agent: ExampleISP-FBL/1.0
Version: 1
Original-Rcpt-To: <{recipient}>
"""
    original = f"""Return-Path: <{verp}>
From: Test Network <news@example.org>
To: {recipient}
Subject: Coalition news

Hello"""
    return _report("feedback-report", to, "This is an email abuse report.",
                   "message/feedback-report", machine, "message/rfc822", original, None)
