"""SMTP relay connection settings, shared by every mail we send (the client is smtp.py)."""

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

    @classmethod
    def from_settings(cls, settings: Settings) -> Relay:
        s = settings.smtp
        return cls(s.host, s.port, s.tls, s.user, str(s.password), s.timeout)

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

