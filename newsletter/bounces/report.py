"""Read an inbound bounce or complaint: which delivery it is about and what kind it is.

Order of evidence, most trustworthy first:

1. The delivery: the VERP address the bounce was sent to (the envelope recipient, then
   Delivered-To / X-Original-To / To), then a VERP Return-Path inside the returned original
   message. Only an HMAC-valid token counts; anything else leaves `delivery_id` None.
2. The kind: an ARF report (RFC 5965, report-type=feedback-report) is a complaint. A DSN
   (RFC 3464, report-type=delivery-status) is read field by field: Action, Status,
   Final-Recipient, Diagnostic-Code. Anything else goes to flufl.bounce, which knows many
   non-standard formats (it has no VERP detector, hence step 1).

Classification follows STANDARDS.md: 5.x.x is hard, except x.2.2 (mailbox full), which is
soft even when sent as 5.2.2, and 5.7.x, a policy or reputation block that proves nothing
about the address ("policy"). 4.x.x and Action: delayed are soft.
"""

from __future__ import annotations

import email
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.message import Message

from flufl.bounce import all_failures

from newsletter.bounces.intake import PARSE_LIMIT, ReportUnreadable, parse_message
from newsletter.delivery.verp import decode_verp
from newsletter.tokens import Signer

# flufl.bounce logs each failing heuristic with a traceback; the fallback below expects them.
logging.getLogger("flufl.bounce").addHandler(logging.NullHandler())

KINDS = ("hard", "soft", "policy", "complaint", "unknown", "unreadable")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class BounceReport:
    """What one inbound report says."""

    kind: str  # one of KINDS
    delivery_id: int | None
    recipients: tuple[str, ...] = ()
    status: str = ""  # enhanced status code, e.g. 5.1.1
    action: str = ""  # DSN Action: failed, delayed, ...
    diagnostic: str = ""  # the remote server's words, or the feedback type for complaints
    source: str = ""  # dsn, arf, flufl or none


def classify_status(status: str, action: str = "failed") -> str:
    """hard, soft or policy for an enhanced status code (RFC 3463) and DSN action."""
    match = _STATUS.search(status or "")
    if action.lower() in ("delayed", "relayed", "delivered", "expanded"):
        return "soft"
    if not match:
        return "hard" if action.lower() == "failed" else "unknown"
    klass, subject, detail = match.groups()
    if subject == "2" and detail == "2":
        return "soft"
    if klass == "4":
        return "soft"
    if klass == "5" and subject == "7":
        return "policy"
    return "hard" if klass == "5" else "unknown"


def _verp_from(addresses: Iterable[str | None], signer: Signer) -> int | None:
    for address in addresses:
        if address:
            found = decode_verp(str(address), signer)
            if found is not None:
                return found
    return None


def _returned_original(msg: Message) -> Message | None:
    """The original message (or its headers) a report carries, if any."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if kind == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            return email.message_from_bytes(raw if isinstance(raw, bytes) else b"")
    return None


def _report_part(msg: Message, content_type: str) -> list[Message]:
    """The blocks of a message/delivery-status or message/feedback-report part."""
    for part in msg.walk():
        if part.get_content_type() == content_type:
            payload = part.get_payload()
            if isinstance(payload, list):
                return [p for p in payload if isinstance(p, Message)]
            raw = part.get_payload(decode=True)
            text = raw if isinstance(raw, bytes) else b""
            return [email.message_from_bytes(block.strip() + b"\n")
                    for block in re.split(rb"\r?\n\r?\n", text) if block.strip()]
    return []


def _address(value: object) -> str:
    """`rfc822; user@example.org` -> user@example.org."""
    text = _one_line(value)
    if ";" in text:
        text = text.split(";", 1)[1]
    return text.strip().strip("<>").strip()[:254]


def _one_line(value: object, limit: int = 500) -> str:
    """A header's text on one line, without control characters (PostgreSQL refuses NUL)."""
    text = str(value) if value else ""
    # 8-bit bytes arrive as surrogates; a database stores only valid text.
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(_CONTROL.sub(" ", text).split())[:limit]


def _from_dsn(blocks: list[Message]) -> tuple[str, tuple[str, ...], str, str, str]:
    """(kind, recipients, status, action, diagnostic) from DSN per-recipient blocks."""
    worst = ("unknown", (), "", "", "")
    rank = {"hard": 4, "policy": 3, "soft": 2, "unknown": 1}
    recipients: list[str] = []
    for block in blocks:
        final = block.get("Final-Recipient") or block.get("Original-Recipient")
        if not final:
            continue
        action = _one_line(block.get("Action"), 40).lower()
        status = _one_line(block.get("Status"), 40)
        kind = classify_status(status, action or "failed")
        recipients.append(_address(final))
        if rank[kind] > rank[worst[0]]:
            worst = (kind, (), status, action, _one_line(block.get("Diagnostic-Code")))
    return worst[0], tuple(recipients), worst[2], worst[3], worst[4]


def parse_bounce(data: bytes, signer: Signer, envelope_to: Sequence[str] = ()) -> BounceReport:
    """Read a bounce or complaint in this process; never raises (kind "unreadable")."""
    try:
        return parse_report(data[:PARSE_LIMIT], signer, envelope_to)
    except (ReportUnreadable, RecursionError) as exc:
        return BounceReport(kind="unreadable", delivery_id=None, diagnostic=str(exc),
                            source="none")


def parse_report(data: bytes, signer: Signer, envelope_to: Sequence[str] = ()) -> BounceReport:
    """Read a bounce or complaint (kind "unknown" when it says nothing we understand).

    ReportUnreadable when it is nested too deep; run it in a ParseWorker to bound its time.
    """
    msg = parse_message(data)
    original = _returned_original(msg)
    headers = [msg.get(h) for h in ("Delivered-To", "X-Original-To", "To")]
    inner = [original.get(h) for h in ("Return-Path", "From")] if original is not None else []
    delivery_id = _verp_from([*envelope_to, *headers, *inner], signer)
    report_type = (msg.get_param("report-type") or "") if msg.is_multipart() else ""
    report_type = str(report_type).lower()
    if report_type == "feedback-report" or _report_part(msg, "message/feedback-report"):
        fields = _report_part(msg, "message/feedback-report")
        info = fields[0] if fields else Message()
        rcpt = _address(info.get("Original-Rcpt-To")) or _address(original.get("To")
                                                                   if original else "")
        return BounceReport(kind="complaint", delivery_id=delivery_id,
                            recipients=(rcpt,) if rcpt else (),
                            diagnostic=_one_line(info.get("Feedback-Type") or "abuse"),
                            source="arf")
    blocks = _report_part(msg, "message/delivery-status")
    if blocks:
        kind, recipients, status, action, diagnostic = _from_dsn(blocks)
        if kind != "unknown" or recipients:
            return BounceReport(kind=kind, delivery_id=delivery_id, recipients=recipients,
                                status=status, action=action, diagnostic=diagnostic,
                                source="dsn")
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # flufl's detectors are heuristics over arbitrary input
        temporary, permanent = frozenset(), frozenset()
    if permanent or temporary:
        found = permanent or temporary
        return BounceReport(
            kind="hard" if permanent else "soft", delivery_id=delivery_id,
            recipients=tuple(sorted(a.decode("utf-8", "replace") for a in found)),
            source="flufl")
    return BounceReport(kind="unknown", delivery_id=delivery_id, source="none")
