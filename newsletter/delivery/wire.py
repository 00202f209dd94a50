"""The SMTP transaction on the wire, after aiosmtplib has connected, greeted and logged in.

aiosmtplib parses every address with the email package, runs two regular expressions over
every message (line endings, then dot-stuffing), and reads exactly one reply per command
written: replies that arrive together are dropped, so it cannot pipeline. Our builder already
emits CRLF-only bytes and ASCII envelope addresses, so `Wire` takes the connection over
(`transport.set_protocol`) and does the rest itself:

- commands are pre-encoded bytes (`mail_from`, `rcpt_to`, `DATA`, `RSET`), dot-stuffing is one
  `bytes.replace`, only for a message that has a line starting with "." (`dot_stuff`), and no
  scan at all for the builder's messages that it vouches have none (`DotFree`);
- `write` sends any number of them at once; `reply` returns the server's replies one at a
  time, in order, however they arrive (RFC 2920 PIPELINING needs exactly that).

smtp.py's Session is the only caller; it decides what to group. Losing the connection or
waiting longer than the relay's timeout for a reply raises aiosmtplib's own
SMTPServerDisconnected or SMTPReadTimeoutError, so callers handle one set of exceptions.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import aiosmtplib
from aiosmtplib.errors import SMTPReadTimeoutError

from newsletter.delivery.bodies import DotFree

DATA = b"DATA\r\n"
RSET = b"RSET\r\n"
QUIT = b"QUIT\r\n"
MAX_REPLY = 32 * 1024  # a reply longer than this (with no end in sight) is a broken server


def mail_from(address: str) -> bytes:
    """MAIL FROM:<address>; ValueError for what SMTP cannot carry without SMTPUTF8."""
    return b"MAIL FROM:<" + _address(address) + b">\r\n"


def rcpt_to(address: str) -> bytes:
    return b"RCPT TO:<" + _address(address) + b">\r\n"


def _address(address: str) -> bytes:
    encoded = address.encode("ascii")  # UnicodeEncodeError is a ValueError
    if b"\r" in encoded or b"\n" in encoded or b"<" in encoded or b">" in encoded:
        raise ValueError(f"{address!r} cannot be written in an SMTP command")
    return encoded


def dot_stuff(data: bytes) -> tuple[bytes, bytes]:
    """The message CRLF-terminated and dot-stuffed, then the end-of-data line (to write as
    two chunks: joining them would copy the message once more)."""
    if type(data) is DotFree:
        return data, b".\r\n"
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if _dotted(data):
        if data.startswith(b"."):
            data = b"." + data
        data = data.replace(b"\r\n.", b"\r\n..")
    return data, b".\r\n"


def _dotted(data: bytes) -> bool:
    """Whether any line starts with ".". Looking at each "." (memchr finds them; base64 has
    none) is several times faster than searching the whole message for CRLF "."."""
    at = data.find(b".")
    while at >= 0:
        if at == 0 or data[at - 1] == 10:  # "\n"
            return True
        at = data.find(b".", at + 1)
    return False


def _line_text(line: bytes) -> str:
    """A reply line's text, after its code and separator."""
    return line[4:].strip(b" \t\r").decode("utf-8", "surrogateescape")


class Wire(asyncio.Protocol):
    """An SMTP client connection's byte stream: write commands, read replies in order."""

    def __init__(self, transport: asyncio.Transport, timeout: float | None) -> None:
        self.transport = transport
        self.timeout = timeout
        self.buffer = bytearray()
        self.replies: deque[tuple[int, str]] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.lost: Exception | None = None
        # One timer per connection, not one per reply: it fires at the first deadline and, if
        # a later wait moved the deadline on, sets itself again for that one.
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None

    @classmethod
    def take_over(cls, client: aiosmtplib.SMTP) -> Wire:
        """Move a connected, greeted aiosmtplib client's transport to a new Wire."""
        transport = client.transport
        if transport is None or transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        wire = cls(transport, client.timeout)  # type: ignore[arg-type]
        transport.set_protocol(wire)
        client.transport = client.protocol = None  # the client no longer owns the connection
        return wire

    @property
    def open(self) -> bool:
        return self.lost is None and not self.transport.is_closing()

    def write(self, *chunks: bytes) -> None:
        if not self.open:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        self.transport.writelines(chunks)

    async def reply(self) -> tuple[int, str]:
        """The next reply (code, text; a multi-line text joined with newlines)."""
        if not self.replies:
            if self.lost is not None:
                raise self.lost
            loop = asyncio.get_running_loop()
            waiter = self.waiter = loop.create_future()
            if self.timeout:
                self.deadline = loop.time() + self.timeout
                if self.timer is None:
                    self.timer = loop.call_at(self.deadline, self._time_out)
            try:
                await waiter
            finally:
                self.waiter = None
        return self.replies.popleft()

    def close(self) -> None:
        self._stop_timer()
        self.transport.close()

    def abort(self) -> None:
        self._stop_timer()
        self.transport.abort()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        if not self.buffer and data[-1:] == b"\n" and self._one_liners(data):
            return
        self.buffer += data
        buffer = self.buffer
        start = 0
        while True:  # every complete reply in the buffer
            end = _reply_end(buffer, start)
            if end < 0:
                break
            lines = bytes(buffer[start:end]).split(b"\n")[:-1]
            text = "\n".join(_line_text(line) for line in lines)
            try:
                code = int(lines[0][:3])
            except ValueError:
                self._lose(aiosmtplib.SMTPServerDisconnected(
                    f"malformed reply: {bytes(lines[0][:80])!r}"))
                return
            self.replies.append((code, text))
            start = end
        del buffer[:start]
        if len(buffer) > MAX_REPLY:
            self._lose(aiosmtplib.SMTPServerDisconnected("reply too long"))
            return
        if self.replies:
            self._wake()

    def _one_liners(self, data: bytes) -> bool:
        """The usual case, one-line replies that arrived whole (several when pipelining):
        taken straight from `data`; False for anything else, left to the general path."""
        replies = []
        for line in data.split(b"\n")[:-1]:
            if line[3:4] == b"-" or not line[:3].isdigit():
                return False
            replies.append((int(line[:3]), _line_text(line)))
        self.replies.extend(replies)
        self._wake()
        return True

    def eof_received(self) -> bool:
        self._lose(aiosmtplib.SMTPServerDisconnected("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        error = aiosmtplib.SMTPServerDisconnected(f"Connection lost{f': {exc}' if exc else ''}")
        self.lost = self.lost or error
        self._stop_timer()
        self._wake()

    def _lose(self, exc: Exception) -> None:
        self.lost = self.lost or exc
        self.transport.abort()
        self._wake()

    def _time_out(self) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return  # no wait now: the next one sets the timer again
        loop = asyncio.get_running_loop()
        if loop.time() < self.deadline:  # this wait began after the timer was set
            self.timer = loop.call_at(self.deadline, self._time_out)
            return
        waiter.set_exception(SMTPReadTimeoutError("Timed out waiting for server response"))

    def _wake(self, *_: Any) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.replies:
            waiter.set_result(None)
        elif self.lost is not None:
            waiter.set_exception(self.lost)


def _reply_end(buffer: bytearray, start: int) -> int:
    """Offset just past the reply starting at `start` ("250-..." lines then "250 ..."), or -1."""
    while True:
        newline = buffer.find(b"\n", start)
        if newline < 0:
            return -1
        if buffer[start + 3:start + 4] != b"-":
            return newline + 1
        start = newline + 1
