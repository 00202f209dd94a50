"""The sender's errors: each one becomes a single clear line and a non-zero exit in the CLI."""

from __future__ import annotations

from newsletter.errors import NewsletterError


class SendError(NewsletterError):
    """An issue cannot be sent as asked (checks failed, missing languages, already sent)."""


class RelayUnavailable(SendError):
    """The SMTP relay is down or refuses every connection: stop before burning the list."""


class SendInterrupted(SendError):
    """The editor pressed Ctrl-C; the run paused cleanly and can be resumed."""
