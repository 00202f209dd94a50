"""System mails (the outbox) sent over the send's relays: the same RelaySet and Slot.

`outbox.py` claims the due rows and settles them; this module sends them. The relays are the
send's: `[[smtp.relays]]` (or the one `[smtp]` relay) with their weights, rate and hourly
limits, strikes and cool-down, `[smtp] rate` and `[smtp.domain_limits]`, through one
connection (`Slot`) at a time. Keep one `MailRun` for the life of a process (the worker's tick
loop, the web app's outbox task): a relay taken out stays out for its cool-down across passes,
and its hourly budget counts every pass.

Before each pass `join` links the relays to the shared view (relayview.py) and exchanges with
it when due (about every second): a relay that a send or another process took out is out for
the outbox as well, one the outbox took out is out for the sends, and the hourly limits count
the system mails with the newsletters. `leave` gives back what the hourly limits reserved.
In a worker the per-second limits are the worker's part (`pacing`, shared with its runs).

The outbox has no at-most-once journal: a mail is owned once claimed, and a reply lost during
DATA (`unknown`) or a 421 (`queued`: the relay closed) means "try again later", like any 4yz.
A pass ends within half its lease (rate limits may slow it down): the mails it did not try are
handed `back` untouched, before another process could claim them again.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.delivery.concurrency import pool_settings
from newsletter.delivery.pacing import Pacing
from newsletter.delivery.queue import Claimed
from newsletter.delivery.relays import RelaySet, Slot

# A delivery outcome -> an outbox status: nothing is `unknown` or put back in the queue.
OUTBOX_STATUS = {"sent": "sent", "deferred": "deferred", "failed": "failed",
                 "queued": "deferred", "unknown": "deferred"}


@dataclass(frozen=True)
class Mail:
    """One claimed outbox row: its id, envelope and bytes."""

    id: int
    sender: str
    recipient: str
    message: bytes


async def _owned(_mail_id: int) -> bool:
    """A claimed outbox row is this pass's: no intent to write before DATA."""
    return True


class MailRun:
    """The relays of the outbox's passes in one process; `send` sends one pass's mails."""

    def __init__(self, settings: Settings, pacing: Pacing | None = None) -> None:
        # One connection; the 3-day give-up of outbox.py replaces [smtp] max_attempts.
        self.pool = dataclasses.replace(pool_settings(settings, 1), max_attempts=sys.maxsize)
        self.settings, self.pacing = settings, pacing
        self.relays = RelaySet.for_worker(settings, self.pool, pacing=pacing)
        self.engine: Engine | None = None

    async def join(self, engine: Engine) -> None:
        """Before a pass: the first time, read the shared view (and reserve the hourly
        budgets); then exchange with it when due."""
        if self.engine is None:
            self.engine = engine
            self.relays = RelaySet.for_worker(self.settings, self.pool, engine=engine,
                                              pacing=self.pacing)
            await self.relays.join()
        else:
            await self.relays.refresh()

    async def leave(self) -> None:
        """When the process stops: write what is left, give back the hourly reservations."""
        await self.relays.leave()

    def ready(self) -> bool:
        """Whether a relay is in now (not cooling down, hourly budget left)."""
        now = time.monotonic()
        return any(state.usable(now) for state in self.relays.states)

    async def send(self, mails: Sequence[Mail], lease: float) -> list[tuple[str, str]]:
        """Each mail's outbox status (sent, deferred, failed; `back`: not tried) and the
        relay's reply; the mails were claimed for `lease` seconds."""
        self.relays.fatal = None  # a new pass: only a relay still cooling down stays out
        slot, deadline = self.relays.slot(), time.monotonic() + lease / 2
        try:
            return [await self._one(slot, mail) if time.monotonic() < deadline else ("back", "")
                    for mail in mails]
        finally:
            await slot.close()
            await self.relays.refresh()  # a relay taken out here: written for everyone now

    def _why(self) -> str:
        """Why every relay is out, e.g. "the SMTP relay at host:25 is unreachable (...)"."""
        return str(self.relays.fatal).removeprefix("stopped sending: ")

    async def _one(self, slot: Slot, mail: Mail) -> tuple[str, str]:
        if self.relays.fatal is not None:  # every relay went out earlier in this pass
            return "deferred", self._why()
        while not await slot.ensure():  # moves to the next relay when one is taken out
            if self.relays.fatal is not None:
                return "deferred", self._why()
            if not slot.bound and not self.ready():
                return "deferred", "every SMTP relay is out or has spent its hourly limit"
        await slot.pace(mail.recipient)
        job = Claimed(mail.id, 0, mail.recipient, "", {}, "", 0)
        outcome = await slot.send(job, lambda _job: (mail.sender, mail.recipient, mail.message),
                                  _owned)
        if outcome is None:  # not sent (the session withheld it): try again later
            return "deferred", "not sent"
        return OUTBOX_STATUS[outcome.status], outcome.reply or ""
