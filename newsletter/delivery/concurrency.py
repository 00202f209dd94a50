"""How many sender processes and SMTP connections a send uses, and the rate they share."""

from __future__ import annotations

import os
from dataclasses import dataclass

from newsletter.config import Settings
from newsletter.delivery.pool import PoolSettings


def pool_settings(
    settings: Settings, connections: int | None = None, rate: float | None = None, workers: int = 1
) -> PoolSettings:
    """[smtp] settings with flag overrides; the rate is shared among the worker processes."""
    s = settings.smtp
    total = s.rate if rate is None else rate
    return PoolSettings(
        connections=connections or s.connections,
        messages_per_connection=s.messages_per_connection,
        rate=total / max(1, workers) if total else 0.0,
        retry_delay=s.retry_delay,
        max_attempts=s.max_attempts,
    )


def default_workers(cores: int | None, signing: bool = False) -> int:
    """Sender processes for a machine with `cores` CPUs: one per two cores, or one per core
    when every message is DKIM-signed.

    Each worker shares the machine with the relay (Postfix's smtpd), the database and the
    parent process. On 2 cores one worker with 16 connections sent 1,964 msg/s against
    1,409-1,559 for two workers with 8 each (issue 16, bench/send_bench.py, quiet machine): a
    second process there only adds its own journal, claims and contention for SQLite's
    write lock.

    Signing turns that around: the RSA signature is most of a signed message's CPU, so a second
    process uses the second core. On 2 cores, 20,000 signed messages (2048-bit key): one worker
    x 16 connections 1,350 msg/s (0.18 of smtp-source -d), two workers x 8 1,899 msg/s (0.28).
    """
    return max(1, cores or 1) if signing else max(1, (cores or 1) // 2)


@dataclass(frozen=True)
class Concurrency:
    """How many processes and SMTP connections a send uses, and whether the editor chose."""

    workers: int
    connections: int  # per worker
    chosen: bool  # False: picked for the machine
    relays: int = 1  # [[smtp.relays]] the connections are spread over
    signing: bool = False  # [dkim] signs every message: one worker per core

    def describe(self) -> str:
        signed = ", DKIM signing" if self.signing else ""
        how = "" if self.chosen else f" (picked for {os.cpu_count() or 1} CPU cores{signed})"
        noun = "worker" if self.workers == 1 else "workers"
        over = f" over {self.relays} relays" if self.relays > 1 else ""
        return f"{self.workers} {noun} x {self.connections} SMTP connections{over}{how}"


def concurrency(settings: Settings, workers: int | None, connections: int | None) -> Concurrency:
    """The flags, else [smtp] workers and connections; workers 0 means one per two cores (one
    per core when [dkim] signs)."""
    chosen = workers or settings.smtp.workers
    signing = bool(settings.dkim.key_path)
    return Concurrency(workers=chosen or default_workers(os.cpu_count(), signing),
                       connections=connections or settings.smtp.connections,
                       chosen=bool(chosen), relays=len(settings.smtp.relays) or 1,
                       signing=signing)
