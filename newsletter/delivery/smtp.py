"""The one SMTP client: every mail we send (newsletter, outbox, test copy) goes through `Session`.

A session connects through `Relay` (EHLO, STARTTLS, AUTH as configured, done by aiosmtplib),
then speaks the transaction itself over wire.py, pipelined (RFC 2920) when the server offers
PIPELINING, and turns what happened into a `Result`. The rules are those of STANDARDS.md, in
one place, and the same with or without pipelining:

- 2yz sent; 4yz and any x.2.2 deferred; 5yz failed, reply kept;
- 421 (at any step) closes the connection, the caller reconnects next time, and the message
  is retried without counting against the recipient; the result names it a `relay_fault`,
  so 421s in a row take the relay out like refused connections;
- MAIL FROM (or EHLO) refused: the relay's fault, not the recipient's: retried, and the result
  says so (`relay_fault`) so a bulk sender can stop a run against a relay that refuses us;
- the connection drops or times out before the message's text went out: retried, nothing was
  sent;
- the connection drops or times out after the text went out: `unknown`, the server may have
  the message; never resent by the session;
- after a refused MAIL FROM, RCPT TO or DATA the next transaction starts with RSET (in the same
  write when pipelining), so the connection stays usable; a refused message's end needs none.

`send` takes an optional `proceed` awaitable, awaited once the server has answered DATA with
354 and before the message's text: the newsletter passes its write-ahead journal commit there
(the row is durably `sending` before any byte of the message leaves), and a False answer
withholds the message, closing the connection (inside DATA nothing else can end it unsent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Literal

import aiosmtplib

from newsletter.delivery.relay import Relay
from newsletter.delivery.wire import DATA, QUIT, RSET, Wire, dot_stuff, mail_from, rcpt_to

Status = Literal["sent", "deferred", "failed", "retry", "unknown", "withheld"]
ACCEPTED = {b"MAIL": 250, b"RCPT": 250, b"DATA": 354}  # the reply that lets a step go on
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


Envelope = tuple[str, str]  # (MAIL FROM address, RCPT TO address)


class Session:
    """One SMTP connection to the relay, sending one message at a time, pipelined if offered.

    With PIPELINING (RFC 2920) a message costs one write and one wait: MAIL FROM, RCPT TO and
    DATA go out together, and the message's end goes out together with the next message's
    envelope when the caller names it (`then`). The replies are read in order and each one
    means what it means without pipelining. Without PIPELINING every command waits for its
    reply, and sending stops at the first refusal.
    """

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.wire: Wire | None = None
        self.pipelining = False
        self.sent = 0  # messages accepted since this connection opened
        self.announced: Envelope | None = None  # whose MAIL, RCPT and DATA are on their way
        self.dirty = False  # a refused envelope left a transaction open: RSET first

    @property
    def connected(self) -> bool:
        return self.wire is not None and self.wire.open

    async def connect(self) -> None:
        """Open a fresh connection (saying QUIT on any old one); raises Unreachable."""
        await self.quit()
        client = self.relay.client()
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
            pipelining = client.supports_extension("pipelining")
            self.wire = Wire.take_over(client)
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise Unreachable(describe_error(exc), f"{type(exc).__name__}: {exc}") from None
        self.pipelining, self.sent, self.announced, self.dirty = pipelining, 0, None, False

    async def quit(self) -> None:
        """Say QUIT (briefly) and close; a dead connection is just closed."""
        wire = self.wire
        if wire is None or not wire.open or self.announced is not None:
            self.drop()  # with an envelope announced the server waits for a message: no QUIT
            return
        self.wire = None
        try:
            wire.write(QUIT)
            await asyncio.wait_for(wire.reply(), timeout=2.0)
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            pass
        wire.close()

    def drop(self) -> None:
        """Close without QUIT (after a 421, a broken connection, or inside DATA)."""
        if self.wire is not None:
            self.wire.abort()
        self.wire, self.announced = None, None

    async def send(self, sender: str, rcpt: str, data: bytes,
                   proceed: Awaitable[bool] | None = None, then: Envelope | None = None) -> Result:
        """Send one message (CRLF bytes, ASCII envelope) and say what happened.

        `then`: the envelope of the message the caller sends next on this session; with
        PIPELINING it goes out with this message's end, and the next `send` must be for it.
        """
        if not self.connected:
            self.wire = self.announced = None
            return Result("retry", "connection lost before DATA: not connected",
                          relay_fault="closed the connection")
        try:
            refused = await self._envelope((sender, rcpt))
        except LOST as exc:
            self.drop()
            return Result("retry", f"connection lost before DATA: {exc}", describe_error(exc))
        except ValueError as exc:  # an address SMTP cannot carry (UnicodeError included)
            return Result("failed", f"address not sendable: {exc}")
        if refused is not None:
            return refused
        if proceed is not None and not await proceed:
            self.drop()  # the server waits for the message: only closing ends it unsent
            return Result("withheld")
        return await self._message(data, then)

    async def _envelope(self, envelope: Envelope) -> Result | None:
        """MAIL FROM, RCPT TO and DATA (after RSET if needed); None once the server said 354."""
        wire = self.wire
        assert wire is not None
        announced, self.announced = self.announced, None
        if announced is not None and announced != envelope:  # the caller broke its word
            self.drop()
            return Result("retry", "connection lost before DATA: another envelope was announced")
        steps = [b"MAIL", b"RCPT", b"DATA"]
        if announced is None:
            lines = [mail_from(envelope[0]), rcpt_to(envelope[1]), DATA]
            if self.dirty:
                steps.insert(0, b"RSET")
                lines.insert(0, RSET)
                self.dirty = False
            if self.pipelining:
                wire.write(*lines)
        else:  # they went out with the previous message's end (pipelining only)
            lines = [b"", b"", b""]
        refused: Result | None = None
        for step, line in zip(steps, lines, strict=True):
            if not self.pipelining:
                if refused is not None:
                    break
                wire.write(line)
            code, text = await wire.reply()
            if code == 421:  # closing: counts against the relay, not the recipient
                self.drop()
                fault = _refusal(step, code, text) if step == b"MAIL" else None
                return fault or _closing(code, text)
            if refused is None and step != b"RSET":
                refused = _refusal(step, code, text)
            if step == b"DATA" and code == 354 and refused is not None:
                # The server took DATA although no recipient was accepted: end it empty.
                wire.write(b".\r\n")
                await wire.reply()
        if refused is not None:
            self.dirty = True
        return refused

    async def _message(self, data: bytes, then: Envelope | None) -> Result:
        """The message after the 354, and the next envelope with it when pipelining."""
        wire = self.wire
        assert wire is not None
        chunks = [*dot_stuff(data)]
        if then is not None and self.pipelining:
            try:
                chunks += [mail_from(then[0]), rcpt_to(then[1]), DATA]
            except ValueError:  # the next send reports it
                pass
            else:
                self.announced = then
        try:
            wire.write(*chunks)
            code, text = await wire.reply()
        except LOST as exc:
            self.drop()
            return Result("unknown", f"connection lost during DATA: {exc}", describe_error(exc))
        if code == 250:
            self.sent += 1
            return Result("sent", text)
        if code == 421:
            self.drop()
            return _closing(code, text)
        return Result(classify_reply(code, text), reply_text(code, text))  # type: ignore[arg-type]


def _closing(code: int, text: str) -> Result:
    """A 421 after MAIL FROM: the message is retried, and the relay gets a strike."""
    reply = reply_text(code, text)
    return Result("retry", reply, f"answered {reply}")


def _refusal(step: bytes, code: int, text: str) -> Result | None:
    """What a refused MAIL FROM, RCPT TO or DATA means for the message; None if accepted."""
    if code == ACCEPTED[step]:  # the common case, three times a message: nothing to format
        return None
    reply = reply_text(code, text)
    if step == b"MAIL":  # the relay's fault, not the recipient's
        return Result("retry", reply, f"refused the sender: {reply}", code >= 500)
    if step == b"RCPT":
        return None if code == 251 else Result(classify_reply(code, text), reply)  # type: ignore[arg-type]
    return Result(classify_reply(code, text), reply)  # type: ignore[arg-type]


async def send_each(relay: Relay, envelopes: Iterable[tuple[str, str, bytes]]) -> list[Result]:
    """Send messages one after another on one connection, reconnecting after a 421 or a drop
    (test copies: an editor is waiting, so a relay that cannot be reached raises Unreachable
    at once)."""
    session = Session(relay)
    results: list[Result] = []
    try:
        for sender, rcpt, data in envelopes:
            if not session.connected:
                await session.connect()
            results.append(await session.send(sender, rcpt, data))
    finally:
        await session.quit()
    return results


async def probe(relay: Relay) -> None:
    """Connect, greet and quit once; raises Unreachable when the relay is not there."""
    session = Session(relay)
    await session.connect()
    await session.quit()
