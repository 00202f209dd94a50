"""SMTP relay connection settings and reply classification, shared by every mail we send."""

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
        s = settings["smtp"]
        return cls(s["host"], s["port"], s["tls"], s["user"], str(s["password"]), s["timeout"])

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
