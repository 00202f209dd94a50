"""What every request handler shares, built once per process from the settings."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from newsletter.audience.optin import OptIn
from newsletter.audience.preferences import HotReads
from newsletter.config import Settings
from newsletter.web.forms import Fields

# A proof-of-work or CAPTCHA hook: called with the request and the posted fields before a
# subscribe or manage request is acted on; returning False answers 400. None are installed
# unless create_app(settings, checks=[...]) is given some.
Check = Callable[[Request, Fields], Awaitable[bool]]

T = TypeVar("T")

LANGUAGE_NAMES = {"en": "English", "fr": "Français", "es": "Español"}


@dataclass(frozen=True)
class Site:
    """How pages present the organisation."""

    name: str
    base_url: str
    css_url: str = ""
    logo_url: str = ""
    organisation: str = ""
    consent_texts: dict[str, str] = field(default_factory=dict)
    language_names: dict[str, str] = field(default_factory=lambda: dict(LANGUAGE_NAMES))

    @functools.cached_property
    def template_key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """What page templates take in from the site when loaded (pages.fill_site), hashable."""
        return (self.name, self.organisation, tuple(self.language_names.items()))

    @classmethod
    def from_settings(cls, settings: Settings) -> Site:
        site, web = settings["newsletter"], settings["web"]
        return cls(
            name=site["name"],
            base_url=site["base_url"],
            css_url=web["css_url"],
            logo_url=site["logo_url"],
            organisation=site["organisation"],
            consent_texts={str(k): str(v) for k, v in (web.get("consent_text") or {}).items()},
        )


@dataclass
class WebContext:
    """Settings, services and hooks of one app instance (app.state.web)."""

    settings: Settings
    engine: Engine
    optin: OptIn
    site: Site
    checks: Sequence[Check] = ()
    cors_origins: Sequence[str] = ("*",)
    outbox_wakeup: asyncio.Event | None = None
    hot: HotReads | None = None  # SQLite only: the hot-path reads on a held DB-API connection
    _writer: ThreadPoolExecutor | None = field(default=None, repr=False)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a read-only database call: inline on SQLite, in the thread pool otherwise.

        SQLite reads in WAL mode never wait for writers and take microseconds, less than the
        hop to a worker thread; PostgreSQL waits on the network, and writes on either may wait
        for a lock, so those go to the thread pool (starlette.concurrency.run_in_threadpool).
        """
        if self.engine.dialect.name == "sqlite":
            return fn(*args)
        return await run_in_threadpool(fn, *args)

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a database call that writes, off the event loop.

        On SQLite every write goes through one thread per process: SQLite takes one writer at a
        time anyway, and threads racing for its lock fall into its sleeping busy handler, which
        showed as 600 ms tail latency under load. PostgreSQL writes use the shared thread pool.
        """
        call = functools.partial(fn, *args, **kwargs)
        if self.engine.dialect.name != "sqlite":
            return await run_in_threadpool(call)
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        return await asyncio.get_running_loop().run_in_executor(self._writer, call)

    def close(self) -> None:
        """Stop the SQLite writer thread, if one was started; return held connections."""
        if self.hot is not None:
            self.hot.close()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def wake_outbox(self) -> None:
        """Let the in-process outbox worker send a just-queued mail without waiting."""
        if self.outbox_wakeup is not None:
            self.outbox_wakeup.set()


def web_context(request: Request) -> WebContext:
    """The WebContext of the app serving this request."""
    return request.app.state.web


def cors_headers(web: WebContext, request: Request) -> dict[str, str]:
    """CORS answer headers for a script on another site (no credentials are ever allowed)."""
    origin = request.headers.get("origin")
    if not origin:
        return {}
    if "*" in web.cors_origins:
        return {"Access-Control-Allow-Origin": "*"}
    if origin in web.cors_origins:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {}
