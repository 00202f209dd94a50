"""The public URLs mail points at: base_url over https, the web app, unsubscribe, archive."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from newsletter.doctor.checks import CheckResult, fail, ok, warn
from newsletter.links import archive_base_url, index_path

if TYPE_CHECKING:
    from newsletter.doctor.context import DoctorContext

PROBE_TOKEN = "doctor-probe"  # an unsigned token: our app answers it with 400, not 404


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect as the answer instead of following it."""

    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def fetch_status(url: str, method: str, timeout: float) -> tuple[int, str]:
    """(HTTP status, '') or (0, why it could not be fetched)."""
    request = urllib.request.Request(url, method=method,
                                     headers={"User-Agent": "newsletter-doctor"})
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            return answer.status, ""
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, ""
    except urllib.error.URLError as exc:
        return 0, str(exc.reason)
    except (OSError, ValueError) as exc:
        return 0, str(exc) or type(exc).__name__


def _base(ctx: DoctorContext) -> str:
    return ctx.settings.newsletter.base_url.rstrip("/")


def check_https(ctx: DoctorContext) -> CheckResult:
    """Links in mail use https (RFC 8058 one-click needs it; providers distrust http)."""
    base = _base(ctx)
    if base.startswith("https://"):
        return ok("base-url-https", f"{base} is https")
    return warn("base-url-https", f"{base} is not https: one-click unsubscribe (RFC 8058) "
                "needs an https URL", "serve the web app behind TLS and set [newsletter] base_url "
                "to its https:// address")


def _answers(ctx: DoctorContext, name: str, url: str, method: str = "HEAD") -> CheckResult:
    status, error = fetch_status(url, method, ctx.timeout)
    if not status:
        return fail(name, f"{url} did not answer: {error}",
                    "start `newsletter serve` and make [newsletter] base_url reach it")
    if status >= 500:
        return fail(name, f"{url} answered {status}", "see the web app's log")
    return ok(name, f"{url} answered {status}")


def check_reachable(ctx: DoctorContext) -> CheckResult:
    """The base URL answers at all."""
    return _answers(ctx, "base-url-reachable", _base(ctx) + "/")


def check_healthz(ctx: DoctorContext) -> CheckResult:
    """The web app reports itself healthy (database reachable)."""
    url = _base(ctx) + "/healthz"
    status, error = fetch_status(url, "GET", ctx.timeout)
    if status == 200:
        return ok("healthz", f"{url} answered 200")
    if status == 503:
        return fail("healthz", f"{url} answered 503: the web app cannot reach its database",
                    "check [database] url and that the database is up")
    said = f"answered {status}" if status else f"did not answer: {error}"
    return fail("healthz", f"{url} {said}",
                "run `newsletter serve` behind [newsletter] base_url (the path /healthz must "
                "reach it)")


def check_unsubscribe(ctx: DoctorContext) -> CheckResult:
    """Unsubscribe links reach the web app (a wrong token gets its 400 page, not a 404)."""
    url = f"{_base(ctx)}/unsubscribe/{PROBE_TOKEN}"
    status, error = fetch_status(url, "GET", ctx.timeout)
    if status and status != 404 and status < 500:
        return ok("unsubscribe-url", f"{url} answered {status}")
    said = f"answered {status}" if status else f"did not answer: {error}"
    return fail("unsubscribe-url", f"{url} {said}: unsubscribe links in mail will not work",
                "route /unsubscribe/ under [newsletter] base_url to `newsletter serve`")


def check_archive(ctx: DoctorContext) -> CheckResult:
    """The archive (the "view in browser" links) is published."""
    language = ctx.settings.newsletter.default_language
    url = archive_base_url(ctx.settings) + index_path(language)
    status, error = fetch_status(url, "HEAD", ctx.timeout)
    if 200 <= status < 400:
        return ok("archive-url", f"{url} answered {status}")
    said = f"answered {status}" if status else f"did not answer: {error}"
    return fail("archive-url", f"{url} {said}: \"view in browser\" links will not work",
                "run `newsletter archive build` and serve its folder at [archive] base_url "
                "(default: <base_url>/archive)")
