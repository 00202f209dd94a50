"""Every public URL, built in one place so mail, web app and archive agree: the subscriber's
signed links, and the archive's pages (a published page's URL never changes:
/<lang>/<year>/<slug>/).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from newsletter.tokens import Signer

if TYPE_CHECKING:
    from newsletter.config import Settings


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


def signature_url(base_url: str, signer: Signer, signature_id: int) -> str:
    """The link that verifies a statement's signature; it expires like a confirmation link."""
    token = signer.sign("sign", signature_id, timestamped=True)
    return f"{_base(base_url)}/sign/verify/{token}"


def sign_url(base_url: str, statement_slug: str) -> str:
    """The public sign-on form of a statement."""
    return f"{_base(base_url)}/sign/{statement_slug}"


def subscribe_url(base_url: str, list_slug: str) -> str:
    """The public subscribe form of a list."""
    return f"{_base(base_url)}/subscribe/{list_slug}"


def manage_url(base_url: str) -> str:
    """Generic manage-subscription page, used where no personal link may appear (archive)."""
    return f"{_base(base_url)}/manage"


# ---------------------------------------------------------------- the archive


def archive_base_url(settings: Settings) -> str:
    """Public base URL of the archive: [archive] base_url, else <base_url>/archive."""
    base = settings.archive.base_url or settings.newsletter.base_url + "/archive"
    return base.rstrip("/")


def issue_path(language: str, year: int | str, slug: str) -> str:
    """Path of one issue page in one language, relative to the archive root."""
    return f"/{language}/{year}/{slug}/"


def issue_url(settings: Settings, language: str, year: int | str, slug: str) -> str:
    """Absolute "view in browser" URL of an issue."""
    return archive_base_url(settings) + issue_path(language, year, slug)


def event_calendar_path(language: str, year: int | str, slug: str, key: str) -> str:
    """Path of one event's calendar file (.ics), beside the issue page in that language."""
    return issue_path(language, year, slug) + f"{key}.ics"


def event_calendar_url(settings: Settings, language: str, year: int | str, slug: str,
                       key: str) -> str:
    """Absolute "Add to calendar" URL of an event of an issue."""
    return archive_base_url(settings) + event_calendar_path(language, year, slug, key)


def events_path(language: str) -> str:
    """Path of a language's page of upcoming and past events."""
    return f"/{language}/events/"


def events_feed_path(language: str) -> str:
    """Path of a language's iCalendar feed of events (calendar apps subscribe to it)."""
    return f"/{language}/events.ics"


def index_path(language: str, page: int = 1) -> str:
    """Path of a language's list of issues; page 1 is the language's home page."""
    return f"/{language}/" if page <= 1 else f"/{language}/page/{page}/"


def feed_path(language: str) -> str:
    """Path of a language's Atom feed."""
    return f"/{language}/feed.xml"


def statements_path(language: str) -> str:
    """Path of a language's index of statements."""
    return f"/{language}/statements/"


def statement_path(language: str, slug: str) -> str:
    """Path of a statement's public page (text and signatories) in one language."""
    return f"/{language}/statements/{slug}/"
