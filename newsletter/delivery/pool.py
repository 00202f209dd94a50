"""A pool of persistent SMTP connections: rate limit, reconnects, and what each reply means.

aiosmtplib has no PIPELINING, so parallelism comes from several connections, each sending many
messages (up to `[smtp] messages_per_connection`) before it says QUIT and opens a new one.

Per message, a connection (1) submits the write-ahead intent to the journal, (2) sends MAIL FROM
and RCPT TO while the journal commits, (3) awaits that commit, (4) sends DATA, (5) hands the
outcome back to the journal. Replies map to outcomes as STANDARDS.md says:

- 2yz sent; 4yz and any x.2.2 deferred (retry with backoff); 5yz failed, reply kept;
- 421 (at any step) closes the connection: reconnect, and the message goes back to the queue;
- the connection drops or times out *before* DATA: back to the queue, nothing was sent;
- the connection drops or times out *after* DATA started: `unknown`, because the server may
  have taken the message; it is reported, not resent (at most one copy);
- MAIL FROM refused: a relay problem, not the recipient's. The message goes back to the queue
  and the relay gets a strike.

Strikes (failed connects, refused senders) without any success in between stop the run with
RelayUnavailable, so a dead relay never burns through the list marking people failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import aiosmtplib

from newsletter.db.models import utcnow
from newsletter.delivery.errors import RelayUnavailable
from newsletter.delivery.plan import backoff
from newsletter.delivery.queue import Claimed, Outcome
from newsletter.delivery.relay import Relay, classify_reply
from newsletter.delivery.wire import send_data, send_mail_from, send_rcpt_to
from newsletter.errors import NewsletterError

Build = Callable[[Claimed], tuple[str, str, bytes]]  # -> (envelope from, rcpt to, message)
Intend = Callable[[int], Awaitable[bool]]
Record = Callable[[Outcome], None]


@dataclass(frozen=True)
class PoolSettings:
    """How hard to push the relay; comes from [smtp] settings and CLI flags."""

    connections: int = 4
    messages_per_connection: int = 1000
    rate: float = 0.0  # messages per second for this process, 0 = unlimited
    retry_delay: float = 60.0  # first 4yz backoff; doubles per attempt
    max_attempts: int = 8  # 4yz replies before a delivery is given up as failed
    strikes: int = 0  # relay failures in a row that stop the run (0: 3 x connections)


class RateLimiter:
    """Spaces messages evenly so the process never exceeds `rate` per second."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        self.next = max(self.next + self.interval, now)
        if self.next > now:
            await asyncio.sleep(self.next - now)


class RelayHealth:
    """Counts relay failures in a row across the pool; too many ends the run."""

    def __init__(self, limit: int, relay: Relay) -> None:
        self.limit = limit
        self.relay = relay
        self.failures = 0
        self.fatal: RelayUnavailable | None = None

    def ok(self) -> None:
        self.failures = 0

    def strike(self, reason: str, fatal: bool = False) -> None:
        self.failures += 1
        if fatal or self.failures >= self.limit:
            self.fatal = self.fatal or RelayUnavailable(
                f"stopped sending: the SMTP relay at {self.relay.describe()} {reason}"
            )


def reply_text(code: int, message: str) -> str:
    return f"{code} {message}".strip()


async def probe(relay: Relay) -> None:
    """Connect, greet and quit once, so a dead relay stops the send before anything changes."""
    client = relay.client()
    try:
        await client.connect()
        await client.quit()
    except (aiosmtplib.SMTPException, OSError) as exc:
        client.close()
        raise RelayUnavailable(
            f"cannot send: the SMTP relay at {relay.describe()} {describe_error(exc)}"
        ) from None


def describe_error(exc: BaseException) -> str:
    """A short phrase for a connection-level error, for one-line messages."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"answered {reply_text(exc.code, exc.message)}"
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return "did not answer in time"
    text = str(exc) or type(exc).__name__
    return f"is unreachable ({text})"


class Connection:
    """One persistent SMTP session that sends jobs one at a time."""

    def __init__(self, relay: Relay, settings: PoolSettings, health: RelayHealth) -> None:
        self.relay = relay
        self.settings = settings
        self.health = health
        self.client: aiosmtplib.SMTP | None = None
        self.used = 0
        self.failures = 0

    async def ensure(self) -> bool:
        """Have an open session; False (after a backoff pause) when the relay refused."""
        if self.client is not None and self.client.is_connected and \
                self.used < self.settings.messages_per_connection:
            return True
        await self.close()
        client = self.relay.client()
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            self.failures += 1
            self.health.strike(describe_error(exc))
            await asyncio.sleep(min(5.0, 0.1 * 2 ** min(self.failures, 6)))
            return False
        self.client, self.used, self.failures = client, 0, 0
        return True

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        if client.is_connected:
            try:
                await asyncio.wait_for(client.quit(), timeout=2.0)
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                client.close()
        else:
            client.close()

    def _drop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None

    async def send(self, job: Claimed, build: Build, intend: Intend) -> Outcome | None:
        """Send one message; the outcome to record, or None if the claim was lost."""
        client = self.client
        assert client is not None  # ensure() ran first
        try:
            mail_from, rcpt, data = build(job)
        except NewsletterError as exc:  # e.g. an address that cannot be written in a header
            if not await intend(job.delivery_id):
                return None
            return Outcome(job.delivery_id, "failed", f"message not built: {exc}", job.language)
        intent = asyncio.ensure_future(intend(job.delivery_id))
        try:
            await send_mail_from(client, mail_from)
            await send_rcpt_to(client, rcpt)
        except aiosmtplib.SMTPRecipientRefused as exc:
            if not await intent:
                return None
            await self._after_error(exc.code)
            if exc.code == 421:
                return self._requeue(job, reply_text(exc.code, exc.message))
            return self._judge(job, exc.code, exc.message)
        except aiosmtplib.SMTPResponseException as exc:  # MAIL FROM (or EHLO) refused
            owned = await intent
            await self._after_error(exc.code)
            reply = reply_text(exc.code, exc.message)
            self.health.strike(f"refused the sender: {reply}", fatal=exc.code >= 500)
            return self._requeue(job, reply) if owned else None
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
            owned = await intent
            self._drop()
            self.health.strike(describe_error(exc))
            return self._requeue(job, f"connection lost before DATA: {exc}") if owned else None
        except (ValueError, UnicodeError) as exc:  # an address SMTP cannot carry
            if not await intent:
                return None
            await self._reset()
            return Outcome(job.delivery_id, "failed", f"address not sendable: {exc}",
                           job.language)
        if not await intent:
            await self._reset()
            return None
        try:
            await send_data(client, data)
        except aiosmtplib.SMTPDataError as exc:
            await self._after_error(exc.code)
            if exc.code == 421:
                return self._requeue(job, reply_text(exc.code, exc.message))
            return self._judge(job, exc.code, exc.message)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
            self._drop()
            self.health.strike(describe_error(exc))
            return Outcome(job.delivery_id, "unknown", f"connection lost during DATA: {exc}",
                           job.language)
        self.used += 1
        self.health.ok()
        return Outcome(job.delivery_id, "sent", None, job.language)

    async def _after_error(self, code: int) -> None:
        if code == 421 or self.client is None or not self.client.is_connected:
            self._drop()
        else:
            await self._reset()

    async def _reset(self) -> None:
        client = self.client
        if client is None or not client.is_connected:
            return
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._drop()

    def _requeue(self, job: Claimed, reply: str) -> Outcome:
        return Outcome(job.delivery_id, "queued", reply, job.language)

    def _judge(self, job: Claimed, code: int, message: str) -> Outcome:
        verdict = classify_reply(code, message)
        reply = reply_text(code, message)
        if verdict == "deferred":
            attempts = job.attempts + 1
            if attempts >= self.settings.max_attempts:
                return Outcome(job.delivery_id, "failed",
                               f"gave up after {attempts} attempts: {reply}", job.language)
            delay = backoff(attempts, self.settings.retry_delay)
            return Outcome(job.delivery_id, "deferred", reply, job.language,
                           utcnow() + timedelta(seconds=delay))
        return Outcome(job.delivery_id, verdict, reply, job.language)
