"""SMTP relay connection settings, shared by every mail we send (the client is smtp.py).

`[[smtp.relays]]` lists several relays (delivery/relays.py spreads a send over them); without
it the `[smtp]` section's host, port, TLS and login are the one relay. System mails use the relays
like a send (delivery/mailrun.py); test copies go through the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aiosmtplib

from newsletter.config import Settings


@dataclass(frozen=True)
class Relay:
    """Where and how to reach the SMTP relay."""

    host: str
    port: int
    tls: str  # none | starttls | tls
    user: str
    password: str = field(repr=False)  # never in a log line or a traceback's locals
    timeout: float
    name: str = ""  # in reports, when there are several

    @classmethod
    def from_settings(cls, settings: Settings) -> Relay:
        """The first relay: `[[smtp.relays]]`'s first entry, else `[smtp]`'s."""
        return every_relay(settings)[0]

    def client(self) -> aiosmtplib.SMTP:
        """A not-yet-connected client configured for this relay."""
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.tls == "tls",
            start_tls=self.tls == "starttls",
            username=self.user or None,
            password=self.password or None,
            timeout=self.timeout,
        )

    def describe(self) -> str:
        return f"{self.host}:{self.port} ({self.tls})"

    @property
    def key(self) -> str:
        """Its name in the shared view of the relays (relayview.py): the name, else host:port."""
        return self.name or f"{self.host}:{self.port}"


def every_relay(settings: Settings) -> list[Relay]:
    """The relays in the order of `[[smtp.relays]]`; without it, `[smtp]`'s one relay."""
    s = settings.smtp
    if not s.relays:
        return [Relay(s.host, s.port, s.tls, s.user, str(s.password), s.timeout)]
    return [Relay(r.host, r.port, r.tls, r.user, str(r.password), s.timeout, r.name)
            for r in s.relays]
