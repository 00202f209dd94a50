"""The connection pool in-process against a real SMTP server: what each reply means for a
delivery row, the relay's strikes, reconnects and the rate limit.

`intend` here stands for the journal's write-ahead commit (tests/delivery/test_journal_unit.py
tests the real one): it answers whether the row is still ours. No database is needed, so these
tests are also the fast mutation-testing selection for pool.py.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller

from newsletter.db.models import utcnow
from newsletter.delivery.errors import RelayUnavailable
from newsletter.delivery.pool import Connection, PoolSettings, RateLimiter, RelayHealth
from newsletter.delivery.queue import Claimed, Outcome
from newsletter.delivery.relay import Relay
from newsletter.errors import NewsletterError

RCPT = "reader@example.org"
MESSAGE = b"Subject: hi\r\n\r\nHello\r\n"


def _relay(port: int) -> Relay:
    return Relay("127.0.0.1", port, "none", "", "", 5.0)


def _job(attempts: int = 0, delivery_id: int = 7) -> Claimed:
    return Claimed(delivery_id, 3, RCPT, "Reader", {}, "fr", attempts)


def _build(job: Claimed) -> tuple[str, str, bytes]:
    return "bounces@example.org", job.email, MESSAGE


class Intents:
    """The journal's answer to each write-ahead intent, and the ids asked for."""

    def __init__(self, owned: bool = True) -> None:
        self.owned, self.asked = owned, []

    async def __call__(self, delivery_id: int) -> bool:
        self.asked.append(delivery_id)
        return self.owned


def _send(port, job=None, build=_build, owned=True, settings=None, limit=3,
          before=None):
    """One Connection.send; (outcome, intents, health, connection)."""
    health = RelayHealth(limit, _relay(port))
    conn = Connection(_relay(port), settings or PoolSettings(), health)
    intents = Intents(owned)

    async def run():
        assert await conn.ensure()
        if before:
            await before(conn)
        try:
            return await conn.send(job or _job(), build, intents)
        finally:
            await conn.close()

    return asyncio.run(run()), intents, health, conn


# ---------------------------------------------------------------- replies and outcomes


def test_an_accepted_message_is_sent_once_the_intent_is_committed(smtp_server):
    outcome, intents, _, _ = _send(smtp_server.port)
    assert outcome == Outcome(7, "sent", None, "fr")
    assert intents.asked == [7]
    assert [(m[0], m[1]) for m in smtp_server.messages] == [("bounces@example.org", [RCPT])]


def test_a_success_clears_the_relays_strikes(smtp_server):
    async def struck(conn):
        conn.health.failures = 2

    _, _, health, _ = _send(smtp_server.port, before=struck)
    assert health.failures == 0 and health.fatal is None


def test_a_lost_claim_withholds_the_message(smtp_server):
    outcome, intents, _, _ = _send(smtp_server.port, owned=False)
    assert outcome is None and intents.asked == [7]
    assert smtp_server.messages == []


def test_a_refused_recipient_fails_with_the_servers_reply(smtp_server):
    smtp_server.reply_for = lambda rcpt, n: "550 5.1.1 no such user"
    outcome, _, health, _ = _send(smtp_server.port)
    assert outcome == Outcome(7, "failed", "550 5.1.1 no such user", "fr")
    assert health.failures == 0


def test_a_refused_recipient_on_a_lost_claim_is_not_recorded(smtp_server):
    smtp_server.reply_for = lambda rcpt, n: "550 5.1.1 no such user"
    outcome, intents, _, _ = _send(smtp_server.port, owned=False)
    assert outcome is None and intents.asked == [7]


def test_a_421_puts_the_message_back_in_the_queue_without_an_attempt(smtp_server):
    smtp_server.reply_for = lambda rcpt, n: "421 4.3.2 closing"
    outcome, _, _, _ = _send(smtp_server.port)
    assert outcome == Outcome(7, "queued", "421 4.3.2 closing", "fr")
    assert outcome.retry_at is None


def test_a_4yz_is_deferred_with_the_backoff_of_its_attempt(smtp_server):
    smtp_server.reply_for = lambda rcpt, n: "451 4.3.0 try later"
    settings = PoolSettings(retry_delay=60.0, max_attempts=8)
    before = utcnow()
    outcome, _, _, _ = _send(smtp_server.port, job=_job(attempts=2), settings=settings)
    after = utcnow()
    assert (outcome.delivery_id, outcome.status, outcome.reply, outcome.language) == (
        7, "deferred", "451 4.3.0 try later", "fr")
    # the third attempt waits 4 x the first delay
    assert before + timedelta(seconds=240) <= outcome.retry_at <= after + timedelta(seconds=240)


def test_the_last_allowed_4yz_gives_the_delivery_up_as_failed(smtp_server):
    smtp_server.reply_for = lambda rcpt, n: "451 4.3.0 try later"
    settings = PoolSettings(retry_delay=60.0, max_attempts=3)
    outcome, _, _, _ = _send(smtp_server.port, job=_job(attempts=1), settings=settings)
    assert outcome.status == "deferred"
    outcome, _, _, _ = _send(smtp_server.port, job=_job(attempts=2), settings=settings)
    assert outcome == Outcome(7, "failed", "gave up after 3 attempts: 451 4.3.0 try later",
                              "fr")


def test_a_reply_lost_after_data_is_unknown_and_not_retried(smtp_server):
    smtp_server.lose_reply_after_data = True
    outcome, _, _, _ = _send(smtp_server.port)
    assert (outcome.delivery_id, outcome.status, outcome.language) == (7, "unknown", "fr")
    assert outcome.reply.startswith("connection lost during DATA")
    assert len(smtp_server.messages) == 1


def test_a_message_that_cannot_be_built_fails_after_its_intent(smtp_server):
    def broken(job):
        raise NewsletterError("bad header")

    outcome, intents, _, _ = _send(smtp_server.port, build=broken)
    assert outcome == Outcome(7, "failed", "message not built: bad header", "fr")
    assert intents.asked == [7] and smtp_server.messages == []
    outcome, _, _, _ = _send(smtp_server.port, build=broken, owned=False)
    assert outcome is None


# ---------------------------------------------------------------- the relay's health


def test_a_refused_sender_requeues_the_message_and_strikes_the_relay(smtp_server):
    smtp_server.close_after(0)  # 421 to the next MAIL FROM
    outcome, _, health, _ = _send(smtp_server.port)
    assert outcome == Outcome(7, "queued", "421 4.3.2 Service shutting down", "fr")
    assert health.failures == 1 and health.fatal is None


class _RefusesSenders:
    """aiosmtpd handler of a relay that refuses our sender for good."""

    async def handle_MAIL(self, server, session, envelope, address, options):
        return "550 5.7.1 sender not allowed"


def test_a_sender_refused_for_good_stops_the_run_at_once_with_the_reply(unused_port):
    controller = Controller(_RefusesSenders(), hostname="127.0.0.1", port=unused_port)
    controller.start()
    try:
        outcome, _, health, _ = _send(unused_port, limit=10)
    finally:
        controller.stop()
    assert outcome == Outcome(7, "queued", "550 5.7.1 sender not allowed", "fr")
    assert str(health.fatal) == (f"stopped sending: the SMTP relay at 127.0.0.1:{unused_port} "
                                 "(none) refused the sender: 550 5.7.1 sender not allowed")


def test_a_connection_gone_before_the_message_requeues_it_and_strikes_the_relay(smtp_server):
    async def lost(conn):
        conn.session.drop()

    outcome, intents, health, _ = _send(smtp_server.port, before=lost)
    assert (outcome.status, outcome.delivery_id) == ("queued", 7)
    assert health.failures == 1 and intents.asked == [7]


def test_a_relay_fault_on_a_lost_claim_still_counts(smtp_server):
    smtp_server.close_after(0)
    outcome, _, health, _ = _send(smtp_server.port, owned=False)
    assert outcome is None and health.failures == 1


def test_strikes_in_a_row_stop_the_run_with_the_first_reason():
    health = RelayHealth(3, _relay(2525))
    health.strike("is unreachable (one)")
    health.strike("is unreachable (two)")
    assert health.fatal is None
    health.ok()
    health.strike("a")
    health.strike("b")
    assert health.fatal is None and health.failures == 2
    health.strike("refused the sender: 550 no")
    assert isinstance(health.fatal, RelayUnavailable)
    first = health.fatal
    health.strike("later")
    assert health.fatal is first
    assert str(first) == ("stopped sending: the SMTP relay at 127.0.0.1:2525 (none) "
                          "refused the sender: 550 no")


def test_a_fatal_strike_stops_the_run_at_once():
    health = RelayHealth(10, _relay(2525))
    health.strike("refused the sender: 554 go away", fatal=True)
    assert str(health.fatal) == ("stopped sending: the SMTP relay at 127.0.0.1:2525 (none) "
                                 "refused the sender: 554 go away")


# ---------------------------------------------------------------- connections


def test_a_relay_that_is_down_is_struck_and_retried_after_a_growing_pause(unused_port):
    health = RelayHealth(10, _relay(unused_port))
    conn = Connection(_relay(unused_port), PoolSettings(), health)

    async def run():
        started = time.monotonic()
        assert not await conn.ensure()
        first = time.monotonic() - started
        assert not await conn.ensure()
        return first, time.monotonic() - started - first

    first, second = asyncio.run(run())
    assert first >= 0.2 and second >= 0.4  # 0.1 s x 2, then x 4
    assert conn.failures == 2 and health.failures == 2
    assert health.fatal is None


def test_a_dead_relay_ends_the_run_with_a_one_line_reason(unused_port):
    health = RelayHealth(1, _relay(unused_port))
    conn = Connection(_relay(unused_port), PoolSettings(), health)
    assert not asyncio.run(conn.ensure())
    assert str(health.fatal).startswith(
        f"stopped sending: the SMTP relay at 127.0.0.1:{unused_port} (none) is unreachable (")


def test_a_connection_reconnects_after_its_quota_of_messages(smtp_server):
    settings = PoolSettings(messages_per_connection=2)
    health = RelayHealth(3, _relay(smtp_server.port))
    conn = Connection(_relay(smtp_server.port), settings, health)
    conn.failures = 3

    async def run():
        for i in range(5):
            assert await conn.ensure()
            assert conn.failures == 0
            assert await conn.send(_job(delivery_id=i), _build, Intents()) == Outcome(
                i, "sent", None, "fr")
        await conn.close()
        return conn.session.connected

    assert asyncio.run(run()) is False
    assert smtp_server.wait_for(5)
    assert smtp_server.connections == 3  # 2 + 2 + 1 messages


def test_the_pause_after_a_refused_connect_doubles_up_to_five_seconds(unused_port, monkeypatch):
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(round(seconds, 3))

    conn = Connection(_relay(unused_port), PoolSettings(), RelayHealth(99, _relay(unused_port)))

    async def run():
        monkeypatch.setattr(asyncio, "sleep", pause)  # after the loop has started
        for _ in range(8):
            assert not await conn.ensure()

    asyncio.run(run())
    assert pauses == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


# ---------------------------------------------------------------- pipelining


def _numbered(builds: list[int]):
    """A builder giving each job its own envelope and text, counting the builds."""
    def build(job: Claimed) -> tuple[str, str, bytes]:
        builds.append(job.delivery_id)
        n = job.delivery_id
        return (
            f"bounces+{n}@example.org",
            f"reader{n}@example.org",
            b"Subject: %d\r\n\r\nHi\r\n" % n,
        )

    return build


def _send_in_a_row(port: int, ids: list[int], refused: int | None = None):
    """Send jobs one after another on one connection, each announcing the next."""
    conn = Connection(_relay(port), PoolSettings(), RelayHealth(3, _relay(port)))
    builds: list[int] = []
    build = _numbered(builds)
    jobs = [_job(delivery_id=i) for i in ids]

    async def run():
        assert await conn.ensure()
        pipelined = conn.pipelining
        outcomes = []
        for i, job in enumerate(jobs):
            after = (jobs[i + 1], build) if i + 1 < len(jobs) else None
            outcomes.append(await conn.send(job, build, Intents(), after))
        await conn.close()
        return pipelined, outcomes

    pipelined, outcomes = asyncio.run(run())
    return pipelined, outcomes, builds


def test_with_pipelining_each_message_end_carries_the_next_envelope(smtp_server):
    smtp_server.pipelining = True
    pipelined, outcomes, builds = _send_in_a_row(smtp_server.port, [1, 2, 3])
    assert pipelined
    assert outcomes == [Outcome(i, "sent", None, "fr") for i in (1, 2, 3)]
    assert builds == [1, 2, 3]  # the message sent next is built once, when announced
    assert [(m[0], m[1], m[2].split(b"\r\n")[0]) for m in smtp_server.messages] == [
        (f"bounces+{i}@example.org", [f"reader{i}@example.org"], b"Subject: %d" % i)
        for i in (1, 2, 3)
    ]
    assert smtp_server.grouped["end and next envelope"] == 2


def test_without_pipelining_nothing_is_announced_ahead(smtp_server):
    pipelined, outcomes, builds = _send_in_a_row(smtp_server.port, [1, 2, 3])
    assert not pipelined
    assert [o.status for o in outcomes] == ["sent"] * 3 and builds == [1, 2, 3]
    assert [m[1] for m in smtp_server.messages] == [[f"reader{i}@example.org"] for i in (1, 2, 3)]
    assert smtp_server.grouped["end and next envelope"] == 0


def test_a_pipelined_send_with_nothing_after_it_announces_nothing(smtp_server):
    smtp_server.pipelining = True
    pipelined, outcomes, builds = _send_in_a_row(smtp_server.port, [4])
    assert pipelined and outcomes == [Outcome(4, "sent", None, "fr")] and builds == [4]
    assert smtp_server.grouped["end and next envelope"] == 0


# ---------------------------------------------------------------- the rate limit


def test_the_rate_limit_spaces_messages_evenly():
    async def run(limiter, n):
        started = time.monotonic()
        for _ in range(n):
            await limiter.wait()
        return time.monotonic() - started

    assert RateLimiter(0).interval == 0.0
    assert RateLimiter(-1).interval == 0.0
    assert RateLimiter(4).interval == 0.25
    assert RateLimiter(0.5).interval == 2.0  # one message every two seconds
    assert asyncio.run(run(RateLimiter(10), 4)) >= 0.35  # 0.1 s apart, from the start


def test_the_rate_limit_allows_no_burst_after_an_idle_pause():
    async def run():
        limiter = RateLimiter(5)
        await asyncio.sleep(0.5)  # idle: the next message may go at once, no more
        started = time.monotonic()
        await limiter.wait()
        await limiter.wait()
        await limiter.wait()
        return time.monotonic() - started

    assert asyncio.run(run()) >= 0.35


@pytest.mark.parametrize("rate", [0, 0.0])
def test_no_rate_limit_never_waits(rate):
    limiter = RateLimiter(rate)
    before = limiter.next

    async def run():
        for _ in range(100):
            await limiter.wait()

    asyncio.run(run())
    assert limiter.next == before
