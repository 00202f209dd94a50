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


def index_path(language: str, page: int = 1) -> str:
    """Path of a language's list of issues; page 1 is the language's home page."""
    return f"/{language}/" if page <= 1 else f"/{language}/page/{page}/"


def feed_path(language: str) -> str:
    """Path of a language's Atom feed."""
    return f"/{language}/feed.xml"


def output_file(path: str) -> str:
    """The file that serves a site path: directories are served by their index.html."""
    path = path.lstrip("/")
    return path + "index.html" if path == "" or path.endswith("/") else path


def relative_href(from_path: str, to_path: str) -> str:
    """A link from one page to another that works under any prefix and from a local preview."""
    here = from_path.split("/")[1:-1]
    there = to_path.split("/")[1:]
    common, limit = 0, min(len(here), len(there) - 1)
    while common < limit and here[common] == there[common]:
        common += 1
    rel = "../" * (len(here) - common) + "/".join(there[common:])
    return rel or "./"
