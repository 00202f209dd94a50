"""create_app(services): the stateless subscriber web app (Starlette), and its outbox worker.

Several replicas may run side by side: every limit and every queued mail lives in the database,
and the in-process outbox worker claims rows safely against the other replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from newsletter import __version__
from newsletter.audience.hotreads import AsyncHotReads, HotReads
from newsletter.audience.jobs import run_pending
from newsletter.audience.optin import RateLimited
from newsletter.db.engine import is_sqlite
from newsletter.db.pgasync import has_async_driver
from newsletter.delivery.mailrun import MailRun
from newsletter.errors import NewsletterError, NotFoundError, ValidationError
from newsletter.services import Services
from newsletter.tokens import TokenError
from newsletter.web.archive import PREFIX, ArchiveFiles
from newsletter.web.confirm import confirm_page, confirm_post
from newsletter.web.context import Check, Site, WebContext, cors_headers
from newsletter.web.forms import FormError, is_json_request
from newsletter.web.manage import manage_page, manage_post
from newsletter.web.pages import N_, STATIC, page, request_language
from newsletter.web.preferences import preferences_page, preferences_post
from newsletter.web.rights import data_download, delete_page, delete_post
from newsletter.web.routing import SlashRedirect, WebApp
from newsletter.web.sign import sign_form, sign_post, verify_page, verify_post
from newsletter.web.subscribe import subscribe_form, subscribe_post, subscribe_preflight
from newsletter.web.unsubscribe import unsubscribe_page, unsubscribe_post

log = logging.getLogger(__name__)

ERROR_TEXTS = {
    400: (
        N_("This request cannot be used"),
        N_("Please check the form or the link and try again."),
    ),
    403: (N_("Not allowed"), N_("This action is not allowed.")),
    404: (N_("Page not found"), N_("There is nothing at this address. Check the link.")),
    405: (N_("Not allowed"), N_("This action is not allowed.")),
    413: (N_("Too much data"), N_("What you sent is too large. Please shorten it.")),
    415: (N_("This request cannot be used"), N_("Please send the form from the web page.")),
    429: (
        N_("Too many attempts"),
        N_("Too many requests came from your network. Please try again in an hour."),
    ),
    500: (N_("Something went wrong"), N_("Sorry, this is our fault. Please try again later.")),
}


def _error(request: Request, status: int, detail: str = "") -> Response:
    if is_json_request(request):
        return JSONResponse(
            {"error": detail or ERROR_TEXTS.get(status, ERROR_TEXTS[400])[0]},
            status_code=status,
            headers=cors_headers(request.app.state.web, request),
        )
    language = getattr(request.state, "language", None) or request_language(request)
    title, message = ERROR_TEXTS.get(status, ERROR_TEXTS[400])
    if status == 400 and detail == "link":
        return page(request, "link_invalid.html", language, status=400)
    return page(request, "error.html", language, status=status, title=title, message=message)


async def _on_http(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return _error(request, status)


async def _on_error(request: Request, exc: Exception) -> Response:
    """Map the project's errors to 4xx pages; anything else is logged and answered 500."""
    if isinstance(exc, FormError):
        return _error(request, exc.status, exc.reason)
    if isinstance(exc, TokenError):
        return _error(request, 400, "link")
    if isinstance(exc, NotFoundError):
        return _error(request, 404)
    if isinstance(exc, RateLimited):
        return _error(request, 429)
    if isinstance(exc, ValidationError):
        return _error(request, 400)
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(request, 500)


async def healthz(request: Request) -> Response:
    """Status for load balancers and operators: database reachable, outbox backlog."""
    web: WebContext = request.app.state.web

    try:
        backlog = await run_in_threadpool(web.services.outbox.backlog)
    except Exception as exc:  # the point of a health check is to report this, not raise it
        log.warning("health check: database unreachable: %s", exc)
        down = {"status": "error", "database": "unreachable", "version": __version__}
        return JSONResponse(down, status_code=503)
    return JSONResponse(
        {"status": "ok", "database": "ok", "version": __version__, "outbox": backlog}
    )


async def home(request: Request) -> Response:
    """The root has nothing of its own: send visitors to the manage page."""
    return RedirectResponse("/manage", status_code=303)


async def run_outbox(web: WebContext, interval: float) -> None:
    """Send queued system mails every `interval` seconds, or at once when a request queued one."""
    assert web.outbox_wakeup is not None
    mails = MailRun(web.settings)  # the relays' cool-down and hourly budget hold across passes
    try:
        while True:
            busy = False
            try:
                await web.write(run_pending, web.optin)  # form requests a crash left undone
                report = await web.services.outbox.deliver_async(mails=mails)
                busy = report.total >= 100
            except Exception:  # keep the worker alive through database or relay hiccups
                log.exception("outbox worker pass failed")
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(web.outbox_wakeup.wait(), interval)
            web.outbox_wakeup.clear()
    finally:  # the app stops (the task is cancelled): hand back the hourly reservations
        try:
            await mails.leave()
        except Exception:  # a database gone at shutdown: the reservation lapses with its hour
            log.warning("outbox worker: could not hand back the hourly reservations",
                        exc_info=True)


HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    HTTPException: _on_http,
    NewsletterError: _on_error,
    FormError: _on_error,
    Exception: _on_error,  # Starlette answers with it, then re-raises for the server's log
}


# Served without Starlette's router (web/routing.py); they are in routes() too, for url_for.
HOT_ROUTES = [
    ("GET", "/preferences/", preferences_page),
    ("POST", "/unsubscribe/", unsubscribe_post),
]


def routes() -> list[Route | Mount]:
    """Every URL the app answers."""
    # The busiest first (the one-click POST, then preferences pages): Starlette tries them in
    # order, and no two paths overlap, so the order only changes how many it tries.
    return [
        Route("/unsubscribe/{token}", unsubscribe_post, methods=["POST"]),
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
        Route("/preferences/{token}", preferences_page, methods=["GET"]),
        Route("/preferences/{token}", preferences_post, methods=["POST"]),
        Route("/preferences/{token}/data", data_download, methods=["POST"]),
        Route("/preferences/{token}/delete", delete_page, methods=["GET"]),
        Route("/preferences/{token}/delete", delete_post, methods=["POST"]),
        Route("/", home, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/subscribe/{slug}", subscribe_form, methods=["GET"]),
        Route("/subscribe/{slug}", subscribe_post, methods=["POST"]),
        Route("/subscribe/{slug}", subscribe_preflight, methods=["OPTIONS"]),
        Route("/confirm/{token}", confirm_page, methods=["GET"]),
        Route("/confirm/{token}", confirm_post, methods=["POST"]),
        Route("/sign/verify/{token}", verify_page, methods=["GET"]),
        Route("/sign/verify/{token}", verify_post, methods=["POST"]),
        Route("/sign/{slug}", sign_form, methods=["GET"]),
        Route("/sign/{slug}", sign_post, methods=["POST"]),
        Route("/manage", manage_page, methods=["GET"]),
        Route("/manage", manage_post, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def create_app(
    services: Services,
    *,
    checks: Sequence[Check] = (),
    outbox_worker: bool | None = None,
) -> Starlette:
    """Build the app on the process's services (their engine, their opt-in); the outbox
    worker runs inside it unless [web] outbox_interval is 0."""
    settings, engine = services.settings, services.engine
    site = Site.from_settings(settings)
    interval = settings.web.outbox_interval
    worker = interval > 0 if outbox_worker is None else outbox_worker
    web = WebContext(
        services=services,
        settings=settings,
        optin=services.audience.optin,
        site=site,
        checks=tuple(checks),
        cors_origins=tuple(settings.web.cors_origins),
        hot=HotReads(engine) if is_sqlite(engine) else None,
        hot_async=AsyncHotReads(engine) if has_async_driver(engine) else None,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # What is alive at startup (SQLAlchemy, Jinja, Starlette, the settings) lives as long as
        # the process: keep it out of the garbage collector's full passes, which walked it all
        # and paused every request for 20-40 ms a few times a second under load.
        gc.collect()
        gc.freeze()
        task = None
        if worker:
            web.outbox_wakeup = asyncio.Event()
            task = asyncio.create_task(run_outbox(web, interval or 5.0))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            web.outbox_wakeup = None
            if web.hot_async is not None:
                await web.hot_async.close()
            web.close()
            gc.unfreeze()

    site_dir = settings.path(settings.archive.out)
    archive = Mount(PREFIX, ArchiveFiles(site_dir, settings.newsletter.base_url + PREFIX))
    app = WebApp(
        routes=[*routes(), archive],
        hot_routes=HOT_ROUTES,
        header_options={"css_url": site.css_url, "logo_url": site.logo_url},
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # SlashRedirect does it, at base_url
    app.router.default = SlashRedirect(app.router, settings.newsletter.base_url)
    app.state.web = web
    return app
