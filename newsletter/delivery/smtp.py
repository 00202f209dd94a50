"""The one SMTP client: every mail we send (newsletter, outbox, test copy) goes through `Session`.

A session connects through `Relay` (EHLO, STARTTLS, AUTH as configured), sends one message at a
time with the pre-encoded commands of wire.py, and turns what happened into a `Result`. The
rules are those of STANDARDS.md, in one place:

- 2yz sent; 4yz and any x.2.2 deferred; 5yz failed, reply kept;
- 421 (at RCPT or DATA) closes the connection, the caller reconnects next time, and the message
  is retried without counting against the recipient;
- MAIL FROM (or EHLO) refused: the relay's fault, not the recipient's: retried, and the result
  says so (`relay_fault`) so a bulk sender can stop a run against a relay that refuses us;
- the connection drops or times out before DATA: retried, nothing was sent;
- the connection drops or times out after DATA started: `unknown`, the server may have the
  message; never resent by the session;
- after a refused recipient or DATA the session says RSET, so the connection stays usable.

`send` takes an optional `proceed` awaitable, awaited once RCPT is accepted and before DATA: the
newsletter passes its write-ahead journal commit there (the row is durably `sending` before any
byte of the message leaves), and a False answer withholds the message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Literal

import aiosmtplib

from newsletter.delivery.relay import Relay
from newsletter.delivery.wire import send_data, send_mail_from, send_rcpt_to

Status = Literal["sent", "deferred", "failed", "retry", "unknown", "withheld"]
LOST = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError)


@dataclass(frozen=True)
class Result:
    """What happened to one message.

    `retry`: nothing was sent and the recipient is not to blame (421, lost connection, sender
    refused); `withheld`: `proceed` said no, nothing was sent; `relay_fault`: a short phrase
    when the relay itself misbehaved (e.g. "refused the sender: 550 ..."), `fatal` when it is
    permanent.
    """

    status: Status
    reply: str = ""
    relay_fault: str | None = None
    fatal: bool = False


class Unreachable(Exception):
    """Connecting (or greeting, STARTTLS, AUTH) failed; `reason` is a phrase like
    "is unreachable (...)" that follows the relay's description in a one-line message."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail  # exception type and text, for a stored reply


def classify_reply(code: int, message: str = "") -> str:
    """Map an SMTP reply to sent, deferred or failed (RFC 5321 §4.2.1, RFC 3463).

    x.2.2 (mailbox full) is transient even when the server sends it as 5.2.2.
    """
    if 200 <= code < 300:
        return "sent"
    enhanced = message.strip().split(" ", 1)[0] if message else ""
    if enhanced.endswith(".2.2") and enhanced[:1] in ("4", "5"):
        return "deferred"
    if 400 <= code < 500:
        return "deferred"
    return "failed"


def reply_text(code: int, message: str) -> str:
    """An SMTP reply as one line, e.g. "550 5.1.1 no such user"."""
    return f"{code} {message}".strip()


def describe_error(exc: BaseException) -> str:
    """A short phrase for a connection-level error, for one-line messages."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"answered {reply_text(exc.code, exc.message)}"
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return "did not answer in time"
    text = str(exc) or type(exc).__name__
    return f"is unreachable ({text})"


class Session:
    """One SMTP connection to the relay, sending one message at a time."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.client: aiosmtplib.SMTP | None = None
        self.sent = 0  # messages accepted since this connection opened

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.is_connected

    async def connect(self) -> None:
        """Open a fresh connection (saying QUIT on any old one); raises Unreachable."""
        await self.quit()
        client = self.relay.client()
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise Unreachable(describe_error(exc), f"{type(exc).__name__}: {exc}") from None
        self.client, self.sent = client, 0

    async def quit(self) -> None:
        """Say QUIT (briefly) and close; a dead connection is just closed."""
        client, self.client = self.client, None
        if client is None:
            return
        if not client.is_connected:
            client.close()
            return
        try:
            await asyncio.wait_for(client.quit(), timeout=2.0)
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            client.close()

    def drop(self) -> None:
        """Close without QUIT (after a 421 or a broken connection)."""
        if self.client is not None:
            self.client.close()
        self.client = None

    async def send(self, sender: str, rcpt: str, data: bytes,
                   proceed: Awaitable[bool] | None = None) -> Result:
        """Send one message (CRLF bytes, ASCII envelope) and say what happened."""
        client = self.client
        if client is None or not client.is_connected:
            self.client = None
            return Result("retry", "connection lost before DATA: not connected",
                          relay_fault="closed the connection")
        try:
            await send_mail_from(client, sender)
            await send_rcpt_to(client, rcpt)
        except aiosmtplib.SMTPRecipientRefused as exc:
            return await self._refused(exc.code, exc.message)
        except aiosmtplib.SMTPResponseException as exc:  # MAIL FROM (or EHLO) refused
            await self._after_error(exc.code)
            reply = reply_text(exc.code, exc.message)
            return Result("retry", reply, f"refused the sender: {reply}", exc.code >= 500)
        except LOST as exc:
            self.drop()
            return Result("retry", f"connection lost before DATA: {exc}", describe_error(exc))
        except (ValueError, UnicodeError) as exc:  # an address SMTP cannot carry
            await self.reset()
            return Result("failed", f"address not sendable: {exc}")
        if proceed is not None and not await proceed:
            await self.reset()
            return Result("withheld")
        try:
            response = await send_data(client, data)
        except aiosmtplib.SMTPDataError as exc:
            return await self._refused(exc.code, exc.message)
        except LOST as exc:
            self.drop()
            return Result("unknown", f"connection lost during DATA: {exc}", describe_error(exc))
        self.sent += 1
        return Result("sent", response.message)

    async def _refused(self, code: int, message: str) -> Result:
        await self._after_error(code)
        reply = reply_text(code, message)
        if code == 421:
            return Result("retry", reply)
        return Result(classify_reply(code, message), reply)  # type: ignore[arg-type]

    async def _after_error(self, code: int) -> None:
        if code == 421 or not self.connected:
            self.drop()
        else:
            await self.reset()

    async def reset(self) -> None:
        """RSET, so the connection can carry the next message; drop it if that fails."""
        client = self.client
        if client is None or not client.is_connected:
            return
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            self.drop()


async def send_each(relay: Relay, envelopes: Iterable[tuple[str, str, bytes]], *,
                    stop_if_unreachable: bool = False) -> list[Result]:
    """Send messages one after another on one connection, reconnecting after a 421 or a drop.

    A failed connect gives that message a `retry` result (or raises Unreachable when
    `stop_if_unreachable`); the next message tries to connect again.
    """
    session = Session(relay)
    results: list[Result] = []
    try:
        for sender, rcpt, data in envelopes:
            if not session.connected:
                try:
                    await session.connect()
                except Unreachable as exc:
                    if stop_if_unreachable:
                        raise
                    results.append(Result("retry", f"{relay.describe()}: {exc.detail}",
                                          exc.reason))
                    continue
            results.append(await session.send(sender, rcpt, data))
    finally:
        await session.quit()
    return results


async def probe(relay: Relay) -> None:
    """Connect, greet and quit once; raises Unreachable when the relay is not there."""
    session = Session(relay)
    await session.connect()
    await session.quit()
