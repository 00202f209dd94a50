"""What every request handler shares, built once per process from the settings."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from newsletter.audience.hotreads import AsyncHotReads, HotReads
from newsletter.audience.jobs import run_job
from newsletter.audience.optin import OptIn
from newsletter.audience.preferences import Membership, PreferencesView
from newsletter.audience.subscriptions import Leave, leave_many
from newsletter.config import Settings
from newsletter.db.engine import is_sqlite
from newsletter.db.groupcommit import ApplyMany, GroupCommit, Item, R
from newsletter.i18n import interface_language_names
from newsletter.localized import pick
from newsletter.typography import typeset_text
from newsletter.web.forms import Fields

if TYPE_CHECKING:
    from newsletter.services import Services

# A proof-of-work or CAPTCHA hook: called with the request and the posted fields before a
# subscribe or manage request is acted on; returning False answers 400. None are installed
# unless create_app(settings, checks=[...]) is given some.
Check = Callable[[Request, Fields], Awaitable[bool]]

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Site:
    """How pages present the organisation."""

    name: str
    base_url: str
    css_url: str = ""
    logo_url: str = ""
    organisation: str = ""
    consent_texts: dict[str, str] = field(default_factory=dict)
    language_names: dict[str, str] = field(default_factory=interface_language_names)
    # {language: text} when newsletter.toml gives the name or organisation per language.
    names: dict[str, str] = field(default_factory=dict)
    organisations: dict[str, str] = field(default_factory=dict)
    default_language: str = "en"
    # init=False: a copy made with dataclasses.replace starts with an empty cache.
    _by_language: dict[str, Site] = field(default_factory=dict, init=False, repr=False,
                                          compare=False)
    # What pages.py made once for this per-language site: templates by name, fragments.
    cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def for_language(self, language: str) -> Site:
        """The site as a page in `language` shows it: its name and organisation, typeset."""
        site = self._by_language.get(language)
        if site is None:
            name = pick(self.names or self.name, language, self.default_language)
            organisation = pick(self.organisations or self.organisation, language,
                                self.default_language)
            site = replace(self, name=typeset_text(name, language),
                           organisation=typeset_text(organisation, language))
            self._by_language[language] = site
        return site

    @functools.cached_property
    def template_key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """What page templates take in from the site when loaded (pages.fill_site), hashable."""
        return (self.name, self.organisation, tuple(self.language_names.items()))

    @classmethod
    def from_settings(cls, settings: Settings) -> Site:
        site, web = settings.newsletter, settings.web
        return cls(
            name=site.name,
            base_url=site.base_url,
            css_url=web.css_url,
            logo_url=site.logo_url,
            organisation=site.organisation,
            names=settings.tables.get(("newsletter", "name"), {}),
            organisations=settings.tables.get(("newsletter", "organisation"), {}),
            default_language=site.default_language,
            consent_texts={str(k): str(v) for k, v in (web.consent_text or {}).items()},
        )


@dataclass
class WebContext:
    """Settings, services and hooks of one app instance (app.state.web).

    Handlers reach the owning modules through `services`' facades; the engine is only for
    the fast paths below (HotReads, AsyncHotReads, GroupCommit), which take it directly.
    """

    services: Services
    settings: Settings
    optin: OptIn
    site: Site
    checks: Sequence[Check] = ()
    cors_origins: Sequence[str] = ("*",)
    outbox_wakeup: asyncio.Event | None = None
    hot: HotReads | None = None  # SQLite only: the hot-path reads on a held DB-API connection
    hot_async: AsyncHotReads | None = None  # PostgreSQL with psycopg: on asyncio connections
    _writer: ThreadPoolExecutor | None = field(default=None, repr=False)
    _groups: dict[Any, GroupCommit[Any, Any]] = field(default_factory=dict, repr=False)

    @property
    def engine(self) -> Engine:
        return self.services.engine

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a read-only database call: inline on SQLite, in the thread pool otherwise.

        SQLite reads in WAL mode never wait for writers and take microseconds, less than the
        hop to a worker thread; PostgreSQL waits on the network, and writes on either may wait
        for a lock, so those go to the thread pool (starlette.concurrency.run_in_threadpool).
        """
        if is_sqlite(self.engine):
            return fn(*args)
        return await run_in_threadpool(fn, *args)

    async def preferences_view(self, subscriber_id: int, list_id: int) -> PreferencesView:
        """The preferences page's read, by the fastest path the engine has."""
        if self.hot is not None:
            return self.hot.preferences(subscriber_id, list_id)
        if self.hot_async is not None:
            return await self.hot_async.preferences(subscriber_id, list_id)
        return await run_in_threadpool(self.services.audience.preferences, subscriber_id,
                                       list_id)

    async def membership_of(self, subscriber_id: int, list_id: int) -> Membership | None:
        """The subscriber's language, the list's name and the subscription's status."""
        if self.hot is not None:
            return self.hot.membership(subscriber_id, list_id)
        if self.hot_async is not None:
            return await self.hot_async.membership(subscriber_id, list_id)
        return await run_in_threadpool(self.services.audience.membership, subscriber_id,
                                       list_id)

    async def leave(self, item: Leave) -> Membership | None:
        """Leave one list (a one-click unsubscribe or the page's button) if the subscription is
        active, committed when it returns, in one transaction with concurrent requests'; the
        membership as it was before (None: no such subscriber or list).

        On PostgreSQL with psycopg the read and the write are one statement per batch
        (AsyncHotReads.leave); elsewhere the read, then the writer thread's group commit for a
        real change only (a repeat stays a read). A failed batch is written again one by one.
        """
        if self.hot_async is not None:
            return await self.hot_async.leave(item)
        found = await self.membership_of(item.subscriber_id, item.list_id)
        if found is not None and found.status not in (None, "unsubscribed"):
            await self.write_grouped(leave_many, item)
        return found

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a database call that writes, off the event loop.

        On SQLite every write goes through one thread per process: SQLite takes one writer at a
        time anyway, and threads racing for its lock fall into its sleeping busy handler, which
        showed as 600 ms tail latency under load. PostgreSQL writes use the shared thread pool.
        """
        call = functools.partial(fn, *args, **kwargs)
        if not is_sqlite(self.engine):
            return await run_in_threadpool(call)
        return await asyncio.get_running_loop().run_in_executor(self._writer_thread(), call)

    async def write_grouped(self, apply: ApplyMany[Item, R], item: Item) -> R:
        """apply(conn, [item])'s result, committed; concurrent requests' items share one
        transaction (GroupCommit), written by the process's writer thread on either database.

        A stream of first-time one-click unsubscribes was limited by the rate of transactions,
        one per request: grouping alone took it from 2,900 to 4,500 req/s on SQLite and from
        650 to 1,070 req/s on PostgreSQL (four round trips a transaction; bench/RESULTS.md).
        """
        group = self._groups.get(apply)
        if group is None:
            group = self._groups[apply] = GroupCommit(self.engine, apply)
        return await group.run(item, self._writer_thread())

    def _writer_thread(self) -> ThreadPoolExecutor:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-writer")
        return self._writer

    def close(self) -> None:
        """Stop the writer thread, if one was started; return held connections."""
        if self.hot is not None:
            self.hot.close()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    async def run_job(self, job_id: int) -> None:
        """Process a queued form request once its answer went out (a BackgroundTask)."""
        try:
            await self.write(run_job, self.optin, job_id)
        except Exception:  # the row stays queued: the outbox worker's next pass runs it again
            log.exception("form request %s failed; the outbox worker will retry it", job_id)
        self.wake_outbox()

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
