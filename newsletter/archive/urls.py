"""Archive URLs. A published page's URL never changes: /<lang>/<year>/<slug>/."""

from __future__ import annotations

from newsletter.config import Settings


def archive_base_url(settings: Settings) -> str:
    """Public base URL of the archive: [archive] base_url, else <base_url>/archive."""
    base = settings["archive"]["base_url"] or settings["newsletter"]["base_url"] + "/archive"
    return base.rstrip("/")


def issue_path(language: str, year: int | str, slug: str) -> str:
    """Path of one issue page in one language, relative to the archive root."""
    return f"/{language}/{year}/{slug}/"


def issue_url(settings: Settings, language: str, year: int | str, slug: str) -> str:
    """Absolute "view in browser" URL of an issue."""
    return archive_base_url(settings) + issue_path(language, year, slug)
