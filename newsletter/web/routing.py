"""How a request finds its handler: Starlette's router, with a short cut for the busiest routes.

`WebApp` is Starlette with its hot routes (GET /preferences/<token> and the one-click POST
/unsubscribe/<token>) served without Starlette's router and exception layers, behind the same
security headers; an error there gets the same page from the same exception handler as on any
other route, and every other request, HEAD included, takes Starlette's usual path. What this
saves, measured: Starlette's layers (error and exception middleware, router, route) cost 8 µs
of a 59 µs preferences page (in-process, bench/RESULTS.md, "Web app").

`SlashRedirect` answers the paths no route takes: /manage/ redirects to /manage (and the
reverse) at base_url, never at the request's Host header, which anyone can forge; else 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.errors import NewsletterError
from newsletter.web.forms import FormError
from newsletter.web.headers import SecurityHeaders

Endpoint = Callable[[Request], Awaitable[Response]]
# (method, path prefix, handler): the path is the prefix and then a {token} without "/".
HotRoute = tuple[str, str, Endpoint]
# Errors the exception handlers answer on their own; anything else is re-raised after its page.
ANSWERED = (HTTPException, NewsletterError, FormError)


class WebApp(Starlette):
    """Starlette, with its hot routes served without its router and exception layers."""

    def __init__(self, *, hot_routes: Sequence[HotRoute] = (),
                 header_options: dict[str, str] | None = None, **options: Any) -> None:
        self.hot_routes = tuple(hot_routes)
        self.header_options = header_options or {}  # SecurityHeaders' css_url and logo_url
        super().__init__(**options)
        # Its headers go straight into a hot route's response: no wrapped `send` per request.
        self.security = SecurityHeaders(self.serve_hot, **self.header_options)

    def build_middleware_stack(self) -> ASGIApp:
        """Starlette's stack inside SecurityHeaders, so a 500 page gets the headers too."""
        return SecurityHeaders(super().build_middleware_stack(), **self.header_options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path") and self.hot_endpoint(scope):
            scope["app"] = self
            await self.serve_hot(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def hot_endpoint(self, scope: Scope) -> Endpoint | None:
        """The handler of a hot route; scope["endpoint"] and ["path_params"] set as by the
        router."""
        method, path = scope["method"], scope["path"]
        for hot_method, prefix, endpoint in self.hot_routes:
            if method == hot_method and path.startswith(prefix):
                token = path[len(prefix):]
                if not token or "/" in token:  # what the route's {token} would not match
                    return None
                scope["endpoint"], scope["path_params"] = endpoint, {"token": token}
                return endpoint
        return None

    async def serve_hot(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run a hot route's handler; an error is answered like Starlette's layers would."""
        request = Request(scope, receive, send)
        try:
            response = await scope["endpoint"](request)
        except Exception as exc:
            handlers = self.exception_handlers
            handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
            await self.secured(await handler(request, exc))(scope, receive, send)
            if not isinstance(exc, ANSWERED):
                raise  # as Starlette does for a 500, so the server logs it
            return
        await self.secured(response)(scope, receive, send)

    def secured(self, response: Response) -> Response:
        """The response with the security headers every other route gets from SecurityHeaders."""
        response.raw_headers = self.security.added_to(response.raw_headers)
        return response


class SlashRedirect:
    """The router's answer to an unknown path: the other spelling's redirect, or 404."""

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
