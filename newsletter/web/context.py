"""What every request handler shares, built once per process from the settings."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from newsletter.audience.hotreads import AsyncHotReads, HotReads
from newsletter.audience.jobs import run_job
from newsletter.audience.optin import OptIn
from newsletter.audience.preferences import (
    Membership,
    PreferencesView,
    load_preferences,
    membership,
)
from newsletter.config import Settings
from newsletter.db.engine import is_sqlite
from newsletter.i18n import interface_language_names
from newsletter.localized import pick
from newsletter.typography import typeset_text
from newsletter.web.forms import Fields

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


Item = TypeVar("Item")
R = TypeVar("R")
ApplyMany = Callable[[Connection, list[Item]], list[R]]
Outcome = tuple[Any, BaseException | None]


class GroupCommit(Generic[Item, R]):
    """Concurrent writes of one kind, committed together by one writer thread.

    `apply(conn, items)` writes several requests' items in the caller's transaction and returns
    one result per item. An item joins the batch that is waiting; the next batch starts as soon
    as the previous one has committed, so an idle app adds no delay and a busy one makes one
    transaction for many requests instead of one each. A caller gets its result only after its
    batch committed. If a batch fails, its items are written again one transaction each, so a
    bad item fails only its own request and every other one is still written or gets its own
    error.
    """

    def __init__(self, engine: Engine, apply: ApplyMany[Item, R], max_batch: int = 200) -> None:
        self.engine = engine
        self.apply = apply
        self.max_batch = max_batch  # keeps the statements' parameter lists short
        self.pending: list[tuple[Item, asyncio.Future[R]]] = []
        self.flushing: asyncio.Task[None] | None = None

    async def run(self, item: Item, writer: ThreadPoolExecutor) -> R:
        """Write `item` with the next batch; its result once that batch is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self.pending.append((item, future))
        if self.flushing is None:
            self.flushing = loop.create_task(self._flush(writer))
        return await future

    async def _flush(self, writer: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.pending:
                batch = self.pending[: self.max_batch]
                del self.pending[: self.max_batch]
                items = [item for item, _ in batch]
                try:
                    outcomes = await loop.run_in_executor(writer, self.commit, items)
                except asyncio.CancelledError:
                    for _, future in batch + self.pending:
                        future.cancel()
                    self.pending = []
                    raise
                except Exception as exc:  # the writer thread is gone (the app is stopping)
                    outcomes = [(None, exc)] * len(batch)
                for (_, future), (value, error) in zip(batch, outcomes, strict=True):
                    if future.done():  # the request went away meanwhile
                        continue
                    if error is None:
                        future.set_result(value)
                    else:
                        future.set_exception(error)
        finally:
            self.flushing = None

    def commit(self, items: list[Item]) -> list[Outcome]:
        """Write all items in one transaction; after a failure, each in a transaction alone."""
        try:
            return [(value, None) for value in self.commit_alone(items)]
        except Exception as exc:
            if len(items) == 1:
                return [(None, exc)]
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning(
                "a group of %d writes failed (%s): writing them one by one", len(items), reason
            )
        outcomes: list[Outcome] = []
        for item in items:
            try:
                outcomes.append((self.commit_alone([item])[0], None))
            except Exception as exc:
                outcomes.append((None, exc))
        return outcomes

    def commit_alone(self, items: list[Item]) -> list[R]:
        """apply(conn, items) in a transaction of its own."""
        with self.engine.begin() as conn:
            results = self.apply(conn, items)
        if len(results) != len(items):
            raise RuntimeError("a grouped write returned the wrong number of results")
        return results


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
    hot_async: AsyncHotReads | None = None  # PostgreSQL with psycopg: on asyncio connections
    _writer: ThreadPoolExecutor | None = field(default=None, repr=False)
    _groups: dict[Any, GroupCommit[Any, Any]] = field(default_factory=dict, repr=False)

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
        return await run_in_threadpool(self._in_transaction, load_preferences, subscriber_id,
                                       list_id)

    async def membership_of(self, subscriber_id: int, list_id: int) -> Membership | None:
        """The subscriber's language, the list's name and the subscription's status."""
        if self.hot is not None:
            return self.hot.membership(subscriber_id, list_id)
        if self.hot_async is not None:
            return await self.hot_async.membership(subscriber_id, list_id)
        return await run_in_threadpool(self._in_transaction, membership, subscriber_id,
                                       list_id)

    def _in_transaction(self, fn: Callable[..., T], *args: Any) -> T:
        with self.engine.connect() as conn:
            return fn(conn, *args)

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
