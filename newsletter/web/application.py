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

from sqlalchemy import func, select, text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Match, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter import __version__
from newsletter.audience.hotreads import AsyncHotReads, HotReads
from newsletter.audience.jobs import run_pending
from newsletter.audience.optin import RateLimited
from newsletter.db.engine import is_sqlite
from newsletter.db.pgasync import has_async_driver
from newsletter.delivery.mailrun import MailRun
from newsletter.errors import NewsletterError, NotFoundError, ValidationError
from newsletter.outbox import OUTBOX, deliver_outbox
from newsletter.services import Services
from newsletter.tokens import TokenError
from newsletter.web.archive import PREFIX, ArchiveFiles
from newsletter.web.confirm import confirm_page, confirm_post
from newsletter.web.context import Check, Site, WebContext, cors_headers
from newsletter.web.forms import FormError, is_json_request
from newsletter.web.headers import SecurityHeaders
from newsletter.web.manage import manage_page, manage_post
from newsletter.web.pages import N_, STATIC, page, request_language
from newsletter.web.preferences import preferences_page, preferences_post
from newsletter.web.rights import data_download, delete_page, delete_post
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

    def probe() -> dict[str, int]:
        with web.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            rows = conn.execute(select(OUTBOX.c.status, func.count()).group_by(OUTBOX.c.status))
            return {status: count for status, count in rows}

    try:
        backlog = await run_in_threadpool(probe)
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
    while True:
        busy = False
        try:
            await web.write(run_pending, web.optin)  # form requests a crash left unprocessed
            report = await deliver_outbox(web.settings, web.engine, mails=mails)
            busy = report.total >= 100
        except Exception:  # keep the worker alive through database or relay hiccups
            log.exception("outbox worker pass failed")
        if not busy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(web.outbox_wakeup.wait(), interval)
        web.outbox_wakeup.clear()


HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    HTTPException: _on_http,
    NewsletterError: _on_error,
    FormError: _on_error,
    Exception: _on_error,  # Starlette answers with it, then re-raises for the server's log
}


class WebApp(Starlette):
    """Starlette, with its two busiest routes served without its router and exception layers.

    GET /preferences/<token> and the one-click POST /unsubscribe/<token> go straight to their
    handlers, behind the same security headers, and an error there gets the same page from the
    same handler (HANDLERS) as on any other route; every other request, HEAD included, takes
    Starlette's usual path. Starlette's layers (error and exception middleware, router, route)
    cost 8 µs of a 59 µs preferences page (in-process, bench/RESULTS.md).
    """

    hot: ASGIApp | None = None  # SecurityHeaders around serve_hot, set by create_app
    header_options: dict[str, str] = {}  # SecurityHeaders' css_url and logo_url

    def build_middleware_stack(self) -> ASGIApp:
        """Starlette's stack inside SecurityHeaders, so a 500 page gets the headers too."""
        return SecurityHeaders(super().build_middleware_stack(), **self.header_options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hot is not None and scope["type"] == "http" and not scope.get("root_path"):
            endpoint = _hot_endpoint(scope)
            if endpoint is not None:
                scope["app"] = self
                await self.hot(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _hot_endpoint(scope: Scope) -> Callable[[Request], Awaitable[Response]] | None:
    """The handler for a hot route; scope["endpoint"] and ["path_params"] set as by the router."""
    method, path = scope["method"], scope["path"]
    if method == "GET" and path.startswith("/preferences/"):
        endpoint, token = preferences_page, path[13:]
    elif method == "POST" and path.startswith("/unsubscribe/"):
        endpoint, token = unsubscribe_post, path[13:]
    else:
        return None
    if not token or "/" in token:  # what the route's {token} would not match
        return None
    scope["endpoint"], scope["path_params"] = endpoint, {"token": token}
    return endpoint


async def serve_hot(scope: Scope, receive: Receive, send: Send) -> None:
    """Run a hot route's handler; an error is answered like Starlette's layers would."""
    request = Request(scope, receive, send)
    try:
        response = await scope["endpoint"](request)
    except Exception as exc:
        handler = next(HANDLERS[cls] for cls in type(exc).__mro__ if cls in HANDLERS)
        await (await handler(request, exc))(scope, receive, send)
        if not isinstance(exc, (HTTPException, NewsletterError, FormError)):
            raise  # as Starlette does for a 500, so the server logs it
        return
    await response(scope, receive, send)


class SlashRedirect:
    """The router's answer to an unknown path: /manage/ redirects to /manage (and the reverse)
    at base_url, never at the request's Host header, which anyone can forge; else 404."""

    def __init__(self, router: Router, base_url: str) -> None:
        self.router = router
        self.base_url = base_url.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        if scope["type"] == "http" and path != "/":
            other = path.rstrip("/") if path.endswith("/") else path + "/"
            other_scope = {**scope, "path": scope.get("root_path", "") + other}
            if any(route.matches(other_scope)[0] is not Match.NONE for route in self.router.routes):
                query = scope.get("query_string", b"").decode("latin-1")
                url = self.base_url + other + (f"?{query}" if query else "")
                await RedirectResponse(url, status_code=307)(scope, receive, send)
                return
        await self.router.not_found(scope, receive, send)


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
    optin = services.audience.optin
    site = Site.from_settings(settings)
    interval = settings.web.outbox_interval
    worker = interval > 0 if outbox_worker is None else outbox_worker
    web = WebContext(
        settings=settings,
        engine=engine,
        optin=optin,
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
    app = WebApp(routes=[*routes(), archive], exception_handlers=HANDLERS, lifespan=lifespan)
    app.header_options = {"css_url": site.css_url, "logo_url": site.logo_url}
    app.hot = SecurityHeaders(serve_hot, **app.header_options)
    app.router.redirect_slashes = False  # SlashRedirect does it, at base_url
    app.router.default = SlashRedirect(app.router, settings.newsletter.base_url)
    app.state.web = web
    return app
