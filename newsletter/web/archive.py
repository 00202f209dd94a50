"""The built archive ([archive] out) served under /archive/, so `newsletter serve` alone is the
whole public side: the emails' pictures and "view in browser" links point there.

Pictures carry a content hash in their name (newsletter.archive.assets.hashed_name), so they
are cached for a year; pages change when the next issue is published, so they are cached for
minutes. Mail clients load the pictures from their own origin: nothing here may forbid that.
"""

from __future__ import annotations

import os
import re

from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from newsletter.images import HASH_LENGTH

PREFIX = "/archive"
HASHED = re.compile(r"\.[0-9a-f]{" + str(HASH_LENGTH) + r"}\.[A-Za-z0-9]+$")
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"
# The archive's pages hold the email's own <style> and style="" rules and its remote pictures;
# no script, no frame, no form of their own.
ARCHIVE_CSP = ("default-src 'none'; img-src 'self' data: https:; style-src 'self' "
               "'unsafe-inline'; font-src 'self' data: https:; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'")


def cache_control(path: str, status: int) -> str:
    """A year for content-hashed files, five minutes for pages and feeds, nothing for errors."""
    if status != 200:
        return "no-store"
    return IMMUTABLE if HASHED.search(path) else SHORT


class ArchiveFiles(StaticFiles):
    """StaticFiles (which already refuses paths outside the folder) with the archive's headers;
    the build's hidden files (manifest, half-written temporaries) are never served."""

    def __init__(self, directory: str | os.PathLike[str], public_url: str) -> None:
        super().__init__(directory=directory, html=True, check_dir=False)
        self.public_url = public_url.rstrip("/")

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file's response with cache, CSP and cross-origin headers."""
        if any(part.startswith(".") for part in path.replace(os.sep, "/").split("/")):
            raise HTTPException(status_code=404)
        response = await super().get_response(path, scope)
        if isinstance(response, RedirectResponse):
            # Directory without its slash: redirect at base_url, never at the forgeable Host.
            response = RedirectResponse(f"{self.public_url}/{path.strip('/')}/", 307)
        response.headers["cache-control"] = cache_control(path, response.status_code)
        response.headers["content-security-policy"] = ARCHIVE_CSP
        response.headers["cross-origin-resource-policy"] = "cross-origin"
        return response
