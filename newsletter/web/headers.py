"""Security headers on every response, as a plain ASGI middleware (no per-request task cost).

Tokens travel in URLs, so no page may leak its address: Referrer-Policy no-referrer, and no
third-party content except the operator's own stylesheet and logo origins.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def content_security_policy(css_url: str = "", logo_url: str = "") -> str:
    """A strict CSP allowing only our own files plus the configured stylesheet and logo hosts."""
    styles = " ".join(["'self'", *filter(None, [_origin(css_url)])])
    images = " ".join(["'self'", "data:", *filter(None, [_origin(logo_url)])])
    return (
        f"default-src 'none'; style-src {styles}; img-src {images}; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


class SecurityHeaders:
    """Adds CSP, frame, referrer, sniffing and cache headers unless a response set its own."""

    def __init__(self, app: ASGIApp, css_url: str = "", logo_url: str = "") -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", content_security_policy(css_url, logo_url).encode()),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-content-type-options", b"nosniff"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        self.no_store = (b"cache-control", b"no-store")
        self.names = {name for name, _ in self.headers} | {self.no_store[0]}
        self.all = [*self.headers, self.no_store]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self.added_to(message.get("headers", []))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def added_to(self, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """A response's headers with ours after them, but for those it set itself."""
        headers = list(headers)
        present = {name for name, _ in headers}
        if present.isdisjoint(self.names):  # the usual case: add them all at once
            headers += self.all
        else:
            headers.extend(h for h in self.headers if h[0] not in present)
            if b"cache-control" not in present:
                headers.append(self.no_store)
        return headers
