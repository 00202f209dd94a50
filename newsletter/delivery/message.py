"""One recipient's message as bytes: headers, MIME, VERP and DKIM, assembled in microseconds.

Everything that is the same for every recipient of an edition (From, Subject, List-Id,
Feedback-ID, the MIME skeleton) is formatted once in `MessageBuilder.__init__`. Per recipient
we only sign two link tokens and the VERP token, fill the edition's slots, encode the two
bodies (bodies.py: the edition's literal text is encoded once, only the recipient's values
and the lines around them per message) and join bytes. `email.message.EmailMessage` is far
too slow for that loop; the tests parse every variant with the standard library instead, to
prove the bytes are right.

Transfer encodings are chosen here, before DKIM signs the body (RFC 6376 §5.3), so no relay
ever needs to re-encode it: text/plain as quoted-printable, text/html as base64 (bodies.py).
DKIM signs from the parts (dkim.Frame): the shared head and MIME frame were canonicalized once,
per message only the recipient's fields and the text part are.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Protocol

from newsletter.config import ConfigError, Settings
from newsletter.delivery.bodies import (
    Base64Part,
    DotFree,
    QuotedPrintablePart,
    base64_body,
    dot_line,
    quoted_printable,
)
from newsletter.delivery.dkim import DkimError, DkimSigner, load_dkim
from newsletter.delivery.headers import (
    AddressError,
    ascii_address,
    ascii_field,
    clean_text,
    fold,
    is_atom,
    mailbox,
    phrase_tokens,
    unstructured,
    wire_mailbox,
)
from newsletter.delivery.verp import decode_verp, verp_parts
from newsletter.links import issue_url, preferences_url, unsubscribe_url
from newsletter.tokens import Signer

__all__ = [
    "AddressError", "Alternative", "DkimError", "DkimSigner", "MessageBuilder", "Recipient",
    "decode_verp", "load_dkim", "setting_address", "setting_domain", "setting_url",
    "smtp_address",
]

_SAFE_URL = re.compile(r"https?://[!#-;=?-~]+")  # printable ASCII except space " < >


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who one delivery goes to: the row data the sender claims from the queue."""

    delivery_id: int
    subscriber_id: int
    email: str
    name: str
    attributes: Mapping[str, str] = field(default_factory=dict)


class Edition(Protocol):
    """What the builder needs from the composer's CompiledEdition."""

    @property
    def language(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def slug(self) -> str: ...
    @property
    def date(self) -> Any: ...

    def pieces(self, slots: Any) -> tuple[list[str], list[str]]: ...


def _slots_factory() -> Callable[..., Any]:
    """The composer's Slots class; a stand-in keeps this module usable before it exists."""
    try:
        from newsletter.compose.slots import Slots
    except ImportError:
        @dataclass(frozen=True, slots=True)
        class Slots:  # type: ignore[no-redef]
            name: str
            unsubscribe_url: str
            preferences_url: str
            web_url: str
            attributes: Mapping[str, str]
    return Slots


@dataclass(frozen=True, slots=True)
class Alternative:
    """The MIME frame of every mail we send: multipart/alternative, text/plain then text/html.

    One boundary per builder. text/plain goes as quoted-printable, text/html as base64; both
    encoders keep lines at 76 characters (RFC 2045 §6.7, §6.8).
    """

    header: bytes  # MIME-Version and Content-Type lines, then the blank line ending the head
    text_head: bytes
    html_head: bytes
    tail: bytes

    @classmethod
    def new(cls) -> Alternative:
        """A frame with a fresh random boundary."""
        boundary = f"=_nl_{os.urandom(12).hex()}"  # "=_" never occurs in QP or base64 text
        mark = f"--{boundary}\r\n".encode()
        return cls(
            header=ascii_field("MIME-Version", "1.0") + ascii_field(
                "Content-Type", f'multipart/alternative; boundary="{boundary}"') + b"\r\n",
            text_head=mark + (b"Content-Type: text/plain; charset=utf-8\r\n"
                              b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"),
            html_head=b"\r\n" + mark + (b"Content-Type: text/html; charset=utf-8\r\n"
                                        b"Content-Transfer-Encoding: base64\r\n\r\n"),
            tail=f"--{boundary}--\r\n".encode(),
        )

    def body(self, text: str, html: str) -> bytes:
        """The MIME header lines, the blank line and both encoded parts."""
        return b"".join((self.header, self.text_head, quoted_printable(text), self.html_head,
                         base64_body(html), self.tail))


def _year(date: Any) -> int:
    """The archive year of an edition date given as a date or an ISO string."""
    if hasattr(date, "year"):
        return int(date.year)
    text = str(date or "")
    return int(text[:4]) if text[:4].isdigit() else datetime.now(UTC).year


def setting_address(settings: Settings, section: str, key: str) -> str:
    """An address from the settings in wire form; a ConfigError naming the key if unusable."""
    try:
        return ascii_address(getattr(getattr(settings, section), key))
    except AddressError as exc:
        raise ConfigError(f"[{section}] {key}: {exc}") from None


def setting_domain(settings: Settings, key: str) -> str:
    """A [newsletter] domain setting in punycode form ('' stays ''), checked like an address's."""
    value = (getattr(settings.newsletter, key) or "").strip()
    if not value:
        return ""
    try:
        return ascii_address(f"x@{value}").rpartition("@")[2].lower()
    except AddressError:
        raise ConfigError(f"[newsletter] {key}: not a domain name: {value!r}") from None


def setting_url(settings: Settings) -> str:
    """[newsletter] base_url, refused if it could break the List-Unsubscribe header."""
    base = settings.newsletter.base_url
    if not _SAFE_URL.fullmatch(base):
        raise ConfigError(f"[newsletter] base_url: must be an ASCII http(s) URL without spaces "
                          f"or <>\", got {base!r} (write an IDN host in punycode)")
    return base


def _list_id(name: str, slug: str, domain: str) -> bytes:
    label = ".".join(p for p in slug.lower().split(".") if is_atom(p)) or "list"
    return fold("List-Id", [*phrase_tokens(name, "List-Id"), f"<{label}.{domain.lower()}>"])


def _feedback_id(*fields: str) -> bytes:
    # Colons separate the fields; a colon or space inside one would shift them.
    clean = [clean_text(f).replace(":", "-").replace(" ", "-") or "-" for f in fields]
    value = ":".join(clean).encode("ascii", "replace").decode("ascii")
    return ascii_field("Feedback-ID", value)


class MessageBuilder:
    """Builds every recipient's message for one edition (one issue, list and language)."""

    def __init__(self, *, settings: Settings, edition: Edition, issue_slug: str, list_id: int,
                 list_slug: str, list_name: str, signer: Signer,
                 dkim: DkimSigner | None = None) -> None:
        nl = settings.newsletter
        self._edition = edition
        self._signer = signer
        self._list_id = list_id
        self._dkim = dkim
        self._base_url = setting_url(settings)
        self._slots = _slots_factory()
        self._verp_prefix, self._verp_suffix = verp_parts(settings)
        self._web_url = getattr(edition, "web_url", "") or issue_url(
            settings, edition.language, _year(edition.date), edition.slug)
        from_address = setting_address(settings, "newsletter", "from_address")
        domain = (setting_domain(settings, "message_id_domain")
                  or from_address.rpartition("@")[2])
        self._message_id_suffix = f"@{domain}>\r\n".encode("ascii")
        # Message-IDs need to be unique, not secret (the delivery id already is): a generator
        # seeded from the system once, instead of a system call per message.
        self._random = random.Random(os.urandom(16))
        self._date_second = -1
        self._date_line = b""
        self._mime = mime = Alternative.new()
        self._text, self._html = QuotedPrintablePart(), Base64Part()
        language = edition.language
        sender = (settings.text("newsletter", "from_name", language)
                  or settings.text("newsletter", "name", language))  # in the reader's language
        headers = [mailbox("From", sender, from_address)]
        if nl.reply_to:
            reply_to = setting_address(settings, "newsletter", "reply_to")
            headers.append(mailbox("Reply-To", "", reply_to))
        headers += [
            unstructured("Subject", edition.subject),
            _list_id(list_name, list_slug, setting_domain(settings, "list_id_domain")),
            ascii_field("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            _feedback_id(issue_slug, list_slug, "newsletter", nl.sender_id),
            unstructured("Content-Language", edition.language),
            mime.header,
        ]
        self._head = b"".join(headers)
        # Whether the shared lines can start a line with "." (they cannot: field names, folded
        # lines start with a space), so only the text part is looked at per message.
        self._head_dot = dot_line(self._head) or any(
            dot_line(part) for part in (mime.text_head, mime.html_head, mime.tail))
        self._frame = dkim.frame(self._head, (mime.text_head, mime.html_head, mime.tail)
                                 ) if dkim is not None else None

    @property
    def web_url(self) -> str:
        """The edition's "view in browser" URL, the same for every recipient."""
        return self._web_url

    def envelope_sender(self, delivery_id: int) -> str:
        """VERP address for one delivery: `bounces+TOKEN@bounces-domain`."""
        return f"{self._verp_prefix}{self._signer.sign('verp', delivery_id)}{self._verp_suffix}"

    def _date(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_line = ascii_field("Date", format_datetime(datetime.fromtimestamp(now, UTC)))
            self._date_second = now
        return self._date_line

    def build(self, r: Recipient) -> tuple[str, bytes]:
        """(VERP envelope sender, message bytes with CRLF line endings, DKIM-signed if enabled).

        Raises AddressError when the recipient's address cannot be written (the sender
        should record the delivery as failed with that reason).
        """
        mail_from, _rcpt, message = self.envelope_and_message(r)
        return mail_from, message

    def envelope_and_message(self, r: Recipient) -> tuple[str, str, bytes]:
        """`build`, and the RCPT TO address (smtp_address) the To header was written with."""
        name = clean_text(r.name or "")  # no control characters in headers or bodies
        rcpt = ascii_address(r.email)
        to = wire_mailbox("To", name, rcpt)
        base, signer, list_id = self._base_url, self._signer, self._list_id
        unsubscribe = unsubscribe_url(base, signer, r.subscriber_id, list_id)
        slots = self._slots(
            name=name,
            unsubscribe_url=unsubscribe,
            preferences_url=preferences_url(base, signer, r.subscriber_id, list_id),
            web_url=self._web_url,
            attributes=r.attributes or {},
        )
        html, text = self._edition.pieces(slots)
        # Message-ID and List-Unsubscribe are the only lines not written by `ascii_field`:
        # per recipient, and ASCII by construction (an int, hex, the checked base URL + token).
        own = (
            to,
            self._date(),
            b"Message-ID: <%d.%012x%s" % (r.delivery_id, self._random.getrandbits(48),
                                          self._message_id_suffix),
            b"List-Unsubscribe: <%s>\r\n" % unsubscribe.encode("ascii"),
        )
        text_part, dot = self._text.encode_checked(text)
        html_part = self._html.encode(html)  # base64: never a "."
        # Of the recipient's own lines only To can fold (before a space), around the name.
        dot = dot or self._head_dot or b"\n." in to
        if self._dkim is not None:
            signature, message = self._signed(own, b"".join(text_part), b"".join(html_part))
            dot = dot or dot_line(signature)
            message = signature + message
        else:
            mime = self._mime
            message = b"".join((*own, self._head, mime.text_head, *text_part, mime.html_head,
                                *html_part, mime.tail))
        # SMTP's DATA need not look for lines starting with "." in a message known to have none
        if not dot:
            message = DotFree(message)
        return self.envelope_sender(r.delivery_id), rcpt, message

    def _signed(self, own: tuple[bytes, ...], text: bytes, html: bytes) -> tuple[bytes, bytes]:
        """The DKIM-Signature header and the message it signs: from the parts when the frame
        can prove them canonical (no pass over the whole message), else from the whole."""
        assert self._dkim is not None
        mime = self._mime
        message = b"".join((*own, self._head, mime.text_head, text, mime.html_head, html,
                            mime.tail))
        header = self._frame.sign(own, text, html) if self._frame is not None else None
        return header or self._dkim.sign(message), message


def smtp_address(email: str) -> str:
    """The recipient address for RCPT TO: the same punycode form as in the To header."""
    return ascii_address(email)
