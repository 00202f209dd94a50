"""A local SMTP server that keeps every message in a Maildir: the demo's and developers' inbox.

Nothing is relayed anywhere. Each recipient of a message gets its own Maildir file, with
`Return-Path` and `Delivered-To` added in front as a delivery agent would, so the summary can
count messages per recipient and per language and show duplicates at a glance. The bytes
after those two lines are exactly what the client sent (a DKIM signature still verifies).
"""

from __future__ import annotations

import asyncio
import mailbox
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.errors import NewsletterError

HEADER_PEEK = 64 * 1024  # a message's headers end well before this
MAX_MESSAGE = 50 * 1024 * 1024  # refuse (552) anything bigger than any newsletter
_HEADERS = BytesHeaderParser()


class CaptureError(NewsletterError):
    """The capture server cannot start or its Maildir cannot be read."""


@dataclass(frozen=True, slots=True)
class CapturedMessage:
    """One stored message, as the one-line summary shows it."""

    received_at: datetime
    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    size: int
    language: str
    keys: tuple[str, ...]

    def line(self) -> str:
        """`HH:MM:SS [fr]  15.2 KB  from -> to  Subject`, one per message."""
        to = ", ".join(self.rcpt_tos)
        line = (f"{self.received_at:%H:%M:%S} [{self.language or '-'}] "
                f"{self.size / 1024:6.1f} KB  {self.mail_from or '<>'} -> {to}  {self.subject}")
        # 8-bit junk from a client arrives as surrogates; never let it break the terminal.
        return line.encode("utf-8", "replace").decode("utf-8")


def decode_text(value: str | None) -> str:
    """A header value with RFC 2047 words decoded and folding removed; '' when absent."""
    if not value:
        return ""
    try:
        text = str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        text = value
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(text.split())


def read_headers(data: bytes) -> Any:
    """Parse only the header block of a raw message (fast for large bodies)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    head = data if end < 0 else data[: end + 2]
    return _HEADERS.parsebytes(head)


class CaptureHandler:
    """aiosmtpd handler: store each message per recipient, then report it."""

    def __init__(self, maildir: mailbox.Maildir,
                 on_message: Callable[[CapturedMessage], None] | None = None) -> None:
        self.maildir = maildir
        self.on_message = on_message
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = bytes(envelope.original_content or b"")
        mail_from = envelope.mail_from or ""
        keys = []
        try:
            for rcpt in envelope.rcpt_tos:
                trace = f"Return-Path: <{mail_from}>\r\nDelivered-To: {rcpt}\r\n".encode(
                    "utf-8", "surrogateescape")
                keys.append(self.maildir.add(trace + data))
        except OSError as exc:
            return f"451 4.3.0 cannot store the message: {exc.strerror or exc}"
        headers = read_headers(data)
        captured = CapturedMessage(
            received_at=datetime.now(UTC).astimezone(),
            mail_from=mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            subject=decode_text(headers["Subject"]),
            size=len(data),
            language=(headers["Content-Language"] or "").strip(),
            keys=tuple(keys),
        )
        with self._lock:
            self.count += 1
        if self.on_message is not None:
            self.on_message(captured)
        return "250 2.0.0 OK: captured"


class SmtpController(Controller):
    """aiosmtpd's threaded controller, able to bind port 0 and report the port it got."""

    smtp_class: type[SMTP] = SMTP

    def factory(self) -> SMTP:
        return self.smtp_class(self.handler, **self.SMTP_kwargs)

    def _create_server(self):  # type: ignore[no-untyped-def]
        async def bind() -> asyncio.AbstractServer:
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=self.port)
            self.port = server.sockets[0].getsockname()[1]
            return server
        return bind()


class ThreadedSmtpServer:
    """An aiosmtpd server in a background thread: start(), stop(), or `with`.

    Subclasses make their handler and call `listen` in `start`; the capture server and the
    bounce receiver are both this.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._controller: SmtpController | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def listen(self, handler: Any, *, server_hostname: str, size_limit: int,
               error: type[NewsletterError] = CaptureError,
               smtp_class: type[SMTP] = SMTP) -> Self:
        """Start serving `handler` on host:port; `error` in one line when it cannot."""
        self._controller = listen(handler, self.host, self.port, server_hostname=server_hostname,
                                  size_limit=size_limit, error=error, smtp_class=smtp_class)
        self.port = self._controller.port
        return self

    def stop(self) -> bool:
        """Stop listening and end the server thread; False if it was not running."""
        controller, self._controller = self._controller, None
        if controller is None:
            return False
        controller.stop(no_assert=True)
        return True

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CaptureServer(ThreadedSmtpServer):
    """Runs the capture SMTP server in a background thread."""

    def __init__(self, maildir: Path | str, host: str = "127.0.0.1", port: int = 8025,
                 on_message: Callable[[CapturedMessage], None] | None = None) -> None:
        super().__init__(host, port)
        self.maildir_path = Path(maildir)
        self.on_message = on_message
        self.handler: CaptureHandler | None = None

    @property
    def count(self) -> int:
        """Messages received since start."""
        return self.handler.count if self.handler else 0

    def start(self) -> Self:
        """Create the Maildir if needed and listen; CaptureError if the port is taken."""
        try:
            box = mailbox.Maildir(self.maildir_path, create=True)
        except OSError as exc:
            raise CaptureError(f"cannot create Maildir {self.maildir_path}: "
                               f"{exc.strerror or exc}") from None
        self.handler = CaptureHandler(box, self.on_message)
        return self.listen(self.handler, server_hostname="capture.newsletter.local",
                           size_limit=MAX_MESSAGE)


def listen(handler: Any, host: str, port: int, *, server_hostname: str, size_limit: int,
           error: type[NewsletterError] = CaptureError,
           smtp_class: type[SMTP] = SMTP) -> SmtpController:
    """Start an aiosmtpd server thread for `handler`; `error` in one line when it cannot."""
    try:
        check_free(host, port)
    except CaptureError as exc:
        raise error(str(exc)) from None
    controller = SmtpController(handler, hostname=host, port=port,
                                server_hostname=server_hostname, data_size_limit=size_limit,
                                ready_timeout=10)
    controller.smtp_class = smtp_class
    try:
        controller.start()
    except OSError as exc:
        controller.loop.close()
        raise error(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return controller


def check_free(host: str, port: int) -> None:
    """Fail at once on a taken port (aiosmtpd would only notice after its ready timeout)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CaptureError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise CaptureError(f"cannot listen on {host}:{port}: "
                               f"{exc.strerror or exc}") from None


def summarize_maildir(path: Path | str) -> dict[str, Any]:
    """What arrived: counts per language, recipient, subject and issue, and duplicates.

    `by_issue` uses the first field of Feedback-ID, which the sender sets to the issue slug;
    `duplicates` lists recipients who got the same issue more than once.
    """
    root = Path(path)
    if not (root / "cur").is_dir() and not (root / "new").is_dir():
        raise CaptureError(f"{root} is not a Maildir (run `newsletter capture` first)")
    languages: Counter[str] = Counter()
    recipients: Counter[str] = Counter()
    subjects: Counter[str] = Counter()
    issues: Counter[str] = Counter()
    per_issue: Counter[tuple[str, str]] = Counter()
    total = size = 0
    for sub in ("new", "cur"):
        folder = root / sub
        if not folder.is_dir():
            continue
        for file in sorted(folder.iterdir()):
            if file.name.startswith("."):
                continue
            try:
                with file.open("rb") as fh:
                    head = fh.read(HEADER_PEEK)
                size += file.stat().st_size
            except OSError as exc:
                raise CaptureError(f"{file}: {exc.strerror or exc}") from None
            headers = read_headers(head)
            total += 1
            languages[(headers["Content-Language"] or "").strip() or "(none)"] += 1
            rcpt = headers["Delivered-To"] or headers["To"] or "(none)"
            recipients[decode_text(rcpt).lower()] += 1
            subjects[decode_text(headers["Subject"])] += 1
            feedback = (headers["Feedback-ID"] or "").strip()
            issue = feedback.split(":", 1)[0] if feedback else "(none)"
            issues[issue] += 1
            per_issue[(issue, decode_text(rcpt).lower())] += 1
    return {
        "maildir": str(root),
        "messages": total,
        "bytes": size,
        "recipients": len(recipients),
        "by_language": dict(sorted(languages.items())),
        "by_issue": dict(sorted(issues.items())),
        "by_subject": dict(subjects.most_common()),
        "by_recipient": dict(sorted(recipients.items())),
        "duplicates": sorted({r for (_i, r), n in per_issue.items() if n > 1}),
    }


def clear_maildir(path: Path | str) -> int:
    """Delete every message in the Maildir; returns how many were removed."""
    root = Path(path)
    removed = 0
    for sub in ("new", "cur", "tmp"):
        folder = root / sub
        if folder.is_dir():
            for file in folder.iterdir():
                if file.is_file():
                    file.unlink()
                    removed += sub != "tmp"
    return removed
