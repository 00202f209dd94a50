"""Before a send: does every picture and the "view in browser" link of the email answer?

A HEAD request per URL, all in parallel, each with a short timeout; every failure is reported
at once, so the editor fixes them in one go. Standard library only (urllib).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from html import unescape

TIMEOUT = 5.0
MAX_PARALLEL = 16
USER_AGENT = "newsletter-publish-check"
# Where an email loads pictures from: <img src>, background="..." and CSS url(...).
_IMG_SRC = re.compile(r"""<img\b[^>]*?\bsrc\s*=\s*(["'])(?P<url>.*?)\1""", re.I | re.S)
_BACKGROUND = re.compile(r"""\sbackground\s*=\s*(["'])(?P<url>.*?)\1""", re.I)
_CSS_URL = re.compile(r"""url\(\s*(["']?)(?P<url>[^"')]*?)\1\s*\)""", re.I)


def image_urls(html: str) -> list[str]:
    """The absolute http(s) URLs an email's HTML loads pictures from, without repeats."""
    found: dict[str, None] = {}
    for pattern in (_IMG_SRC, _BACKGROUND, _CSS_URL):
        for match in pattern.finditer(html):
            url = unescape(match.group("url")).strip()
            # Per-recipient placeholders are not fixed URLs: nothing to check before sending.
            if url.lower().startswith(("http://", "https://")) and "{" not in url:
                found.setdefault(url, None)
    return list(found)


def _probe(url: str, timeout: float) -> str | None:
    """None when the URL answers 200, else what went wrong, in a few words."""
    headers = {"User-Agent": USER_AGENT}
    for method in ("HEAD", "GET"):
        request = urllib.request.Request(url, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as exc:
            if method == "HEAD" and exc.code in (405, 501):
                continue  # some servers refuse HEAD: ask with GET (the body is not read)
            return f"answers {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return f"cannot be reached ({reason})"
        return None if status == 200 else f"answers {status}"
    return "cannot be reached"


def failing_urls(urls: Iterable[str], timeout: float = TIMEOUT) -> list[tuple[str, str]]:
    """(url, problem) for each URL that does not answer 200; checked in parallel."""
    unique: Sequence[str] = list(dict.fromkeys(urls))
    if not unique:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(unique))) as pool:
        problems = list(pool.map(lambda u: _probe(u, timeout), unique))
    return [(url, problem) for url, problem in zip(unique, problems, strict=True) if problem]
