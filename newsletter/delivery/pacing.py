"""The per-second limits for the whole network of workers, and each process's part of them.

`[smtp] rate`, each relay's `rate` (`[[smtp.relays]]`) and each `[smtp.domain_limits]` entry
limit every worker together, not each worker. A process keeps one `Pacing`: one RateLimiter
per limit, shared by all its runs and by its outbox (relays.py's RelaySet takes its limiters
from here), so one process sending two issues at once still keeps one relay's rate. Each
limiter spaces the process's messages evenly at its part of the limit and never saves up time
it did not use.

The part is the limit divided among the processes that send:

- `newsletter worker`: among the live workers of the `workers` table (registry.py: a heartbeat
  within STALE_AFTER), counted anew with each heartbeat, about every second (`share`).
- `newsletter send --workers N` (not detached): each of its N processes is in the `workers`
  table while it sends, with a heartbeat about every second (runner.py), and takes 1/n of the
  limits, n the live workers but never fewer than N.
  Dividing is simpler and more robust than a token bucket in the database: one count per
  heartbeat instead of a write per relay and second, and a database that stalls only leaves
  the parts as they were.

The bound, for a limit of R messages a second and n live workers:

- Steady: each worker sends at most R/n + 1 messages in any one second, so the network at most
  R + n (the one more per worker is the message at each edge of the second).
- A worker that starts counts itself before its first message; the others keep their old part
  (R/(n-1)) until their next heartbeat, about a second later. Meanwhile the network may send
  up to R(1 + 1/n): at worst 1.5 R, while a second worker joins the first.
- A worker that stops deletes its row: the others' parts grow at their next heartbeat. One
  that dies is counted until its heartbeat is STALE_AFTER old: slower meanwhile, never faster.
- A worker whose heartbeat is late by more than STALE_AFTER (a database that did not answer
  for that long) is not counted by the others while it still sends its old part: over by that
  part until it beats again.
- All workers are expected to have the same `[smtp]` settings. Not counted: the outbox of
  `newsletter serve`, which applies the whole limits to its system mails as if alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from newsletter.config import Settings
from newsletter.delivery.pool import RateLimiter
from newsletter.delivery.relay import every_relay


class Pacing:
    """This process's part of each per-second limit: `send` ([smtp] rate), one per relay by
    name, one per limited domain."""

    def __init__(self, send: float, relays: Mapping[str, float],
                 domains: Mapping[str, float], share: int = 1) -> None:
        self.totals = {("send", ""): send, **{("relay", k): v for k, v in relays.items()},
                       **{("domain", k): v for k, v in domains.items()}}
        self.limiters = {key: RateLimiter(0.0) for key in self.totals}
        self.parts = 0
        self.share(share)

    @classmethod
    def of(cls, settings: Settings, send: float, share: int = 1) -> Pacing:
        """The limits of the settings, `send` being the whole [smtp] rate (0: none)."""
        entries = settings.smtp.relays  # none: the one [smtp] relay has only [smtp] rate
        relays = {relay.name: entry.rate
                  for relay, entry in zip(every_relay(settings), entries, strict=False)}
        return cls(send, relays, settings.smtp.domain_limits, share)

    def share(self, parts: int) -> None:
        """Take 1/parts of each limit from now on (the live workers were counted again)."""
        parts = max(1, parts)
        if parts == self.parts:
            return
        self.parts = parts
        for key, total in self.totals.items():
            self.limiters[key].interval = parts / total if total > 0 else 0.0

    @property
    def send(self) -> RateLimiter:
        return self.limiters[("send", "")]

    def relay(self, name: str) -> RateLimiter:
        """A relay's limiter (one without a limit for a relay the settings do not name)."""
        return self.limiters.get(("relay", name)) or RateLimiter(0.0)

    @property
    def domains(self) -> dict[str, RateLimiter]:
        return {key: limiter for (kind, key), limiter in self.limiters.items()
                if kind == "domain"}
