"""The subscriber-facing URLs, built in one place so mail, web app and archive agree."""

from __future__ import annotations

from newsletter.tokens import Signer


def _base(base_url: str) -> str:
    return base_url.rstrip("/")


def unsubscribe_url(base_url: str, signer: Signer, subscriber_id: int, list_id: int) -> str:
    """One-click unsubscribe URL (RFC 8058) for this subscriber and list."""
    return f"{_base(base_url)}/unsubscribe/{signer.sign('unsubscribe', subscriber_id, list_id)}"


def preferences_url(base_url: str, signer: Signer, subscriber_id: int, list_id: int) -> str:
    """Preferences page URL for this subscriber, reached from a mail of this list."""
    return f"{_base(base_url)}/preferences/{signer.sign('preferences', subscriber_id, list_id)}"


def confirm_url(base_url: str, signer: Signer, subscriber_id: int, list_id: int) -> str:
    """Double opt-in confirmation URL; the token carries its issue time so it can expire."""
    token = signer.sign("confirm", subscriber_id, list_id, timestamped=True)
    return f"{_base(base_url)}/confirm/{token}"


def subscribe_url(base_url: str, list_slug: str) -> str:
    """The public subscribe form of a list."""
    return f"{_base(base_url)}/subscribe/{list_slug}"


def manage_url(base_url: str) -> str:
    """Generic manage-subscription page, used where no personal link may appear (archive)."""
    return f"{_base(base_url)}/manage"
