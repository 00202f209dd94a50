"""A pool of persistent SMTP connections: rate limit, reconnects, relay health, the journal.

Every SMTP command goes through smtp.Session, which also classifies the replies; this module
decides what each result means for a delivery row. Parallelism comes from several connections,
each sending many messages (up to `[smtp] messages_per_connection`) before it says QUIT and
opens a new one.

Per message, a connection (1) submits the write-ahead intent to the journal, (2) sends MAIL FROM,
RCPT TO and DATA while the journal commits, (3) awaits that commit, (4) sends the message's
text, (5) hands the outcome back to the journal. Where the relay offers PIPELINING, step 2 is
one write, and the text of one message goes out in the same write as the next message's
envelope (smtp.Session). Replies map to outcomes as STANDARDS.md says:

- 2yz sent; 4yz and any x.2.2 deferred (retry with backoff); 5yz failed, reply kept;
- 421 (at any step) closes the connection: reconnect, and the message goes back to the queue;
- the connection drops or times out *before* DATA: back to the queue, nothing was sent;
- the connection drops or times out *after* DATA started: `unknown`, because the server may
  have taken the message; it is reported, not resent (at most one copy);
- MAIL FROM refused: a relay problem, not the recipient's. The message goes back to the queue
  and the relay gets a strike.

Strikes (failed connects, refused senders, 421s) without any success in between take the relay
out (relays.py: for a cool-down when there are several, the others sending its messages); when
every relay is out the run stops with RelayUnavailable, so a dead relay never burns through the
list marking people failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from newsletter.db.models import utcnow
from newsletter.delivery.errors import RelayUnavailable
from newsletter.delivery.plan import backoff
from newsletter.delivery.queue import Claimed, Outcome
from newsletter.delivery.relay import Relay
from newsletter.delivery.smtp import Session, Unreachable
from newsletter.errors import NewsletterError

# (envelope from, rcpt to, message); the message is awaited when a signer process is making
# its DKIM signature (signers.Pending)
Built = tuple[str, str, bytes | Awaitable[bytes]]
Build = Callable[[Claimed], Built]
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
    """Counts one relay's failures in a row across the pool; too many take it out."""

    def __init__(self, limit: int, relay: Relay) -> None:
        self.limit = limit
        self.relay = relay
        self.failures = 0
        self.fatal: RelayUnavailable | None = None
        self.reason = ""  # the phrase of the strike that made it fatal

    def ok(self) -> None:
        self.failures = 0

    def strike(self, reason: str, fatal: bool = False) -> None:
        self.failures += 1
        if self.fatal is None and (fatal or self.failures >= self.limit):
            self.reason = reason
            self.fatal = RelayUnavailable(
                f"stopped sending: the SMTP relay at {self.relay.describe()} {reason}"
            )


class Connection:
    """One persistent SMTP session (smtp.Session) that sends jobs one at a time."""

    def __init__(self, relay: Relay, settings: PoolSettings, health: RelayHealth) -> None:
        self.settings = settings
        self.health = health
        self.session = Session(relay)
        self.failures = 0
        self.ahead: tuple[Claimed, Built] | None = None  # built early

    async def ensure(self) -> bool:
        """Have an open session; False (after a backoff pause) when the relay refused."""
        session = self.session
        if session.connected and session.sent < self.settings.messages_per_connection:
            return True
        try:
            await session.connect()
        except Unreachable as exc:
            self.failures += 1
            self.health.strike(exc.reason)
            await asyncio.sleep(min(5.0, 0.1 * 2 ** min(self.failures, 6)))
            return False
        self.failures = 0
        return True

    async def close(self) -> None:
        await self.session.quit()

    @property
    def pipelining(self) -> bool:
        """Whether the relay takes a message's end and the next envelope in one write."""
        return self.session.connected and self.session.pipelining

    async def send(self, job: Claimed, build: Build, intend: Intend,
                   after: tuple[Claimed, Build] | None = None) -> Outcome | None:
        """Send one message; the outcome to record, or None if the claim was lost.

        `after`: the job this connection sends next (and its builder). Its envelope goes out
        with this message's end when the relay pipelines; its intent waits for its own turn,
        so at most one row per connection is `sending` at a time.
        """
        ahead, self.ahead = self.ahead, None
        try:
            built = ahead[1] if ahead is not None and ahead[0] is job else build(job)
        except NewsletterError as exc:  # e.g. an address that cannot be written in a header
            if not await intend(job.delivery_id):
                return None
            return Outcome(job.delivery_id, "failed", f"message not built: {exc}", job.language)
        mail_from, rcpt, data = built
        then = self._build_ahead(after)  # (its signature is made while this one goes out)
        if not isinstance(data, bytes):
            data = await data
        # The journal commits the intent while the envelope goes out; the session awaits it
        # before the message's text, so the row is durably `sending` before it can arrive.
        intent = asyncio.ensure_future(intend(job.delivery_id))
        result = await self.session.send(mail_from, rcpt, data, intent, then)
        if result.status == "withheld":
            return None
        owned = await intent
        if result.relay_fault:
            self.health.strike(result.relay_fault, fatal=result.fatal)
        if not owned:
            return None
        if result.status == "sent":
            self.health.ok()
            return Outcome(job.delivery_id, "sent", None, job.language)
        if result.status == "retry":
            return Outcome(job.delivery_id, "queued", result.reply, job.language)
        if result.status == "deferred":
            return self._defer(job, result.reply)
        return Outcome(job.delivery_id, result.status, result.reply, job.language)

    def _build_ahead(self, after: tuple[Claimed, Build] | None) -> tuple[str, str] | None:
        """Build the next job's message now, for its envelope to go out early."""
        if after is None or not self.pipelining:
            return None
        job, build = after
        try:
            self.ahead = (job, build(job))
        except NewsletterError:  # its own turn reports it
            return None
        return self.ahead[1][0], self.ahead[1][1]

    def _defer(self, job: Claimed, reply: str) -> Outcome:
        attempts = job.attempts + 1
        if attempts >= self.settings.max_attempts:
            return Outcome(job.delivery_id, "failed",
                           f"gave up after {attempts} attempts: {reply}", job.language)
        delay = backoff(attempts, self.settings.retry_delay)
        return Outcome(job.delivery_id, "deferred", reply, job.language,
                       utcnow() + timedelta(seconds=delay))
