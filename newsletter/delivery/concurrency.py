"""How many sender processes and SMTP connections a send uses, and the rate they share."""

from __future__ import annotations

import importlib.util
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
    when every message is DKIM-signed by dkimpy (see `concurrency` for OpenSSL's RSA).

    Each worker shares the machine with the relay (Postfix's smtpd), the database and the
    parent process. On 2 cores one worker with 16 connections sent 1,964 msg/s against
    1,409-1,559 for two workers with 8 each (issue 16, bench/send_bench.py, quiet machine): a
    second process there only adds its own journal, claims and contention for SQLite's
    write lock.

    Signing turns that around: the RSA signature is most of a signed message's CPU, so a second
    process uses the second core. On 2 cores, 20,000 signed messages (2048-bit key): one worker
    x 16 connections 1,350 msg/s (0.18 of smtp-source -d), two workers x 8 1,899 msg/s (0.28).
    With `cryptography` the signatures are made by signer processes instead (signers.py), and
    one sender process is back to being the better choice.
    """
    return max(1, cores or 1) if signing else max(1, (cores or 1) // 2)


def default_signers(cores: int | None, workers: int = 1) -> int:
    """DKIM signer processes for each of `workers` sender processes: the cores the senders
    leave, shared among them, at least one each (on 2 cores: one sender, one signer)."""
    return max(1, (max(1, cores or 1) - workers) // max(1, workers))


@dataclass(frozen=True)
class Concurrency:
    """How many processes and SMTP connections a send uses, and whether the editor chose."""

    workers: int
    connections: int  # per worker
    chosen: bool  # False: picked for the machine
    relays: int = 1  # [[smtp.relays]] the connections are spread over
    signing: bool = False  # [dkim] signs every message
    signers: int = 0  # DKIM signer processes per worker (signers.py)

    def describe(self) -> str:
        signed = ", DKIM signing" if self.signing else ""
        how = "" if self.chosen else f" (picked for {os.cpu_count() or 1} CPU cores{signed})"
        noun = "worker" if self.workers == 1 else "workers"
        over = f" over {self.relays} relays" if self.relays > 1 else ""
        signers = ""
        if self.signers:
            each = " each" if self.workers > 1 else ""
            signers = (f", {self.signers} DKIM signer process{'es' if self.signers > 1 else ''}"
                       f"{each}")
        return (f"{self.workers} {noun} x {self.connections} SMTP connections{over}{signers}"
                f"{how}")


def concurrency(settings: Settings, workers: int | None, connections: int | None) -> Concurrency:
    """The flags, else [smtp] workers and connections; workers 0 means one per two cores.

    When [dkim] signs with OpenSSL's RSA (`cryptography` installed), the signatures are made
    by signer processes (signers.py): one worker by default, and each worker, however many
    were chosen, gets the cores the workers leave (at least one signer each). dkimpy signs in
    the workers themselves, one per core by default (default_workers)."""
    chosen = workers or settings.smtp.workers
    signing = bool(settings.dkim.key_path)
    remote = signing and importlib.util.find_spec("cryptography") is not None
    count = chosen or default_workers(os.cpu_count(), signing and not remote)
    return Concurrency(workers=count, connections=connections or settings.smtp.connections,
                       chosen=bool(chosen), relays=len(settings.smtp.relays) or 1,
                       signing=signing,
                       signers=default_signers(os.cpu_count(), count) if remote else 0)
