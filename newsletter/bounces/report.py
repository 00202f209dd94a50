"""Read an inbound bounce or complaint: which delivery it is about and what kind it is.

Order of evidence, most trustworthy first:

1. The delivery: the VERP address the bounce was sent to (the envelope recipient, then
   Delivered-To / X-Original-To / To), then a VERP Return-Path inside the returned original
   message. Only an HMAC-valid token counts; anything else leaves `delivery_id` None.
2. The kind: an ARF report (RFC 5965, report-type=feedback-report) is a complaint. A DSN
   (RFC 3464, report-type=delivery-status) is read field by field: Action, Status,
   Final-Recipient (Original-Recipient when that is an X.400 or other non-Internet address),
   Diagnostic-Code, plus the report's human-readable text. Where the DSN names nobody or says
   nothing usable, and for anything else, flufl.bounce finds the failed addresses in the many
   non-standard formats it knows (it has no VERP detector, hence step 1). An out-of-office
   or other automatic reply is "autoreply". classify.py decides hard, soft or policy from
   all that text.
"""

from __future__ import annotations

import email
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from email.header import Header, decode_header
from email.message import Message

from flufl.bounce import all_failures

from newsletter.bounces.classify import ENHANCED, classify
from newsletter.bounces.intake import PARSE_LIMIT, ReportUnreadable, parse_message
from newsletter.delivery.verp import decode_verp
from newsletter.tokens import Signer

# flufl.bounce logs each failing heuristic with a traceback; the fallback below expects them.
logging.getLogger("flufl.bounce").addHandler(logging.NullHandler())

KINDS = ("hard", "soft", "policy", "complaint", "autoreply", "unknown", "unreadable")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TEXT_LIMIT = 20_000  # of a report's human-readable words
# Where a text bounce starts quoting the returned message (our own words must not count).
_QUOTE_START = re.compile(
    # "The original message was received at ..." opens sendmail's own text: not the quote.
    r"^(?!.*original message was received)(?:.*(?:below this line is a copy|"
    r"copy of the (?:original )?message|original message|"
    r"message (?:header|headers) follows?|returned message|nachricht folgt|"
    r"message d'origine|mensaje original).*|(?:return-path|received|message-id|mime-version|"
    r"content-type|dkim-signature|list-unsubscribe):.*)$",
    re.IGNORECASE | re.MULTILINE)
_AUTO_SUBJECT = re.compile(
    r"out of (?:the )?office|automatic reply|auto[- ]?reply|autoresponder|vacation|on leave|"
    r"absence|abwesenheit|automatische antwort|r[ée]ponse automatique|respuesta autom[aá]tica|"
    r"fuera de la oficina|hors du bureau", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class BounceReport:
    """What one inbound report says."""

    kind: str  # one of KINDS
    delivery_id: int | None
    recipients: tuple[str, ...] = ()
    status: str = ""  # enhanced status code, e.g. 5.1.1
    action: str = ""  # DSN Action: failed, delayed, ...
    diagnostic: str = ""  # the remote server's words, or the feedback type for complaints
    source: str = ""  # dsn, arf, flufl, autoreply or none
    reason: str = ""  # which part of the report decided the kind (classify.py)


def classify_status(status: str, action: str = "failed") -> str:
    """hard, soft, policy or unknown for an enhanced status code (RFC 3463) and DSN action."""
    return classify(status=status, action=action)[0]


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


def _decoded(chunk: bytes | str, charset: str | None) -> str:
    if isinstance(chunk, str):
        return chunk
    try:
        return chunk.decode(charset if charset and charset != "unknown-8bit" else "utf-8",
                            "replace")
    except LookupError:
        return chunk.decode("utf-8", "replace")


def _one_line(value: object, limit: int = 500) -> str:
    """A header's text on one line, without control characters (PostgreSQL refuses NUL)."""
    if isinstance(value, Header):  # a field with 8-bit bytes: read them as UTF-8
        text = "".join(_decoded(chunk, charset) for chunk, charset in decode_header(value))
    else:
        text = str(value) if value else ""
    # 8-bit bytes arrive as surrogates; a database stores only valid text.
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(_CONTROL.sub(" ", text).split())[:limit]


def _recipient(block: Message) -> str:
    """The failed address: Final-Recipient, or Original-Recipient when that is not rfc822."""
    final, original = block.get("Final-Recipient"), block.get("Original-Recipient")
    for value in (final, original):
        kind = _one_line(value).split(";", 1)[0].strip().lower()
        if value and (kind in ("rfc822", "") or "@" in _address(value)) and \
                kind not in ("x400", "x-x400"):
            return _address(value)
    return _address(final or original)


def _status_code(value: object) -> str:
    """The enhanced code of a Status field, on one line (`5.1.1`), else its text."""
    text = _one_line(value, 40)
    match = ENHANCED.search(text)
    return match.group(0) if match else text


def _from_dsn(blocks: list[Message], text: str) -> BounceReport:
    """The worst failure among a DSN's per-recipient blocks (delivery_id left None)."""
    rank = {"hard": 4, "policy": 3, "soft": 2, "unknown": 1}
    worst = BounceReport(kind="unknown", delivery_id=None, source="dsn")
    recipients: list[str] = []
    for block in blocks:
        if not (block.get("Final-Recipient") or block.get("Original-Recipient")):
            continue
        action = _one_line(block.get("Action"), 40).lower() or "failed"
        status = _status_code(block.get("Status"))
        diagnostic = _one_line(block.get("Diagnostic-Code"))
        kind, reason = classify(status, diagnostic, text, action)
        recipients.append(_recipient(block))
        if rank[kind] > rank[worst.kind]:
            worst = BounceReport(kind=kind, delivery_id=None, status=status, action=action,
                                 diagnostic=diagnostic, source="dsn", reason=reason)
    return replace(worst, recipients=tuple(recipients))


def _human_text(msg: Message) -> str:
    """The report's own words (its text parts), not the message it returns.

    Not its Subject: that often repeats ours ("Undeliverable: ..."), and our words must not
    decide what the report says.
    """
    words: list[str] = []
    for part in msg.walk():
        kind = part.get_content_type()
        if kind.startswith("message/") or kind == "text/rfc822-headers":
            break
        if kind == "text/plain":
            payload = part.get_payload(decode=True)
            raw = payload if isinstance(payload, bytes) else b""
            charset = part.get_content_charset() or "utf-8"
            try:
                body = raw.decode(charset, "replace")
            except LookupError:
                body = raw.decode("utf-8", "replace")
            found = _QUOTE_START.search(body)
            words.append(body[: found.start()] if found else body)
    return " ".join(" ".join(words).split())[:TEXT_LIMIT]


def _jmrp_recipient(msg: Message, original: Message | None) -> str | None:
    """The complainer of a Microsoft JMRP report (not ARF: the original with a marker header)."""
    marked = [m.get("X-HmXmrOriginalRecipient") for m in (msg, original) if m is not None]
    subject = _one_line(msg.get("Subject")).lower()
    if not any(marked) and not (subject.startswith("complaint about message from")
                                and original is not None):
        return None
    return next((_address(m) for m in marked if m), "")


def _is_autoreply(msg: Message) -> bool:
    """An out-of-office or other automatic reply (RFC 3834), not a delivery failure."""
    sender = _one_line(msg.get("From")).lower()
    if "mailer-daemon" in sender or "postmaster" in sender or sender.endswith("<>"):
        return False  # a mail system, not a person
    # RFC 3834: a person's responder says auto-replied; auto-generated is a mail system's
    # notice, a delivery failure among them ("auto-generated (failure)").
    auto = _one_line(msg.get("Auto-Submitted")).lower()
    return bool(auto.startswith("auto-replied") or msg.get("X-Autoreply")
                or msg.get("X-Autorespond")
                or "auto_reply" in _one_line(msg.get("Precedence")).lower()
                or _AUTO_SUBJECT.search(_one_line(msg.get("Subject"))))


def _from_flufl(msg: Message, text: str) -> BounceReport | None:
    """A non-standard bounce, when flufl.bounce finds failed addresses in it."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # flufl's detectors are heuristics over arbitrary input
        return None
    if not (permanent or temporary):
        return None
    kind, reason = classify(text=text, action="")
    if kind == "unknown":
        kind, reason = ("hard" if permanent else "soft"), "flufl"
    found = permanent or temporary
    return BounceReport(kind=kind, delivery_id=None, source="flufl", reason=reason,
                        recipients=tuple(sorted(_one_line(a.decode("utf-8", "replace"))
                                                for a in found)),
                        diagnostic=text[:500])


def _from_text(msg: Message, text: str) -> BounceReport | None:
    """A mail system's bounce that says why only in words and names no usable address.

    Used only when the VERP address already names the delivery, so the words need not name
    the recipient; a person's message (not from a mail system) is never read this way.
    """
    sender = _one_line(msg.get("From")).lower()
    if not any(word in sender for word in ("mailer-daemon", "postmaster", "mail delivery")):
        return None
    kind, reason = classify(text=text, action="")
    if kind not in ("hard", "soft", "policy"):
        return None
    return BounceReport(kind=kind, delivery_id=None, source="text", reason=reason,
                        diagnostic=text[:500])


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
    jmrp = _jmrp_recipient(msg, original)
    if jmrp is not None:
        return BounceReport(kind="complaint", delivery_id=delivery_id,
                            recipients=(jmrp,) if jmrp else (), diagnostic="abuse (JMRP)",
                            source="jmrp", reason="headers")
    text = _human_text(msg)
    blocks = _report_part(msg, "message/delivery-status")
    found = _from_dsn(blocks, text) if blocks else None
    if found is None or found.kind == "unknown" or not found.recipients:
        if not blocks and _is_autoreply(msg):
            found = BounceReport(kind="autoreply", delivery_id=None, source="autoreply",
                                 diagnostic=_one_line(msg.get("Subject")), reason="headers")
        else:
            found = _from_flufl(msg, text) or found
    if (found is None or found.kind == "unknown") and delivery_id is not None and not blocks:
        found = _from_text(msg, text) or found
    if found is None:
        return BounceReport(kind="unknown", delivery_id=delivery_id, source="none")
    return replace(found, delivery_id=delivery_id)
