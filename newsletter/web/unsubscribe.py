"""GET/POST /unsubscribe/{token}: RFC 8058 one-click, and the page behind the mail's link.

POST needs nothing but the token: no cookie, no CSRF field, any body (Gmail sends
`List-Unsubscribe=One-Click` urlencoded; others multipart). It answers 200 without a redirect
and a repeat changes nothing. GET only shows a button, because link scanners prefetch.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from newsletter.audience.preferences import Membership
from newsletter.audience.subscriptions import Leave
from newsletter.links import preferences_url
from newsletter.web.context import web_context
from newsletter.web.forms import FormError, read_fields, request_meta
from newsletter.web.pages import fixed_page, page, request_language
from newsletter.web.preferences import read_ids


def _language(request: Request, found: Membership | None) -> str:
    if found is None:
        return request_language(request)
    return request_language(request, preference=found.language, default=found.default_language)


async def unsubscribe_page(request: Request) -> Response:
    """One button that posts to this same URL, and a link to the preferences page."""
    web = web_context(request)
    sid, list_id = read_ids(web, "unsubscribe", request.path_params["token"])
    found = await web.membership_of(sid, list_id)
    return page(
        request,
        "unsubscribe.html",
        _language(request, found),
        list_name=found.list_name if found else "",
        preferences_url=preferences_url(web.site.base_url, web.optin.signer, sid, list_id),
    )


async def unsubscribe_post(request: Request) -> Response:
    """Leave the list now; 200 every time, for the mailbox provider and for the page alike."""
    web = web_context(request)
    sid, list_id = read_ids(web, "unsubscribe", request.path_params["token"])
    try:
        via = "page" if (await read_fields(request)).get("via") == "page" else "one-click"
    except FormError:
        via = "one-click"  # the token alone decides; an odd body must not block leaving
    # Only a real change is written; a repeat gets the same answer.
    found = await web.leave(Leave(sid, list_id, request_meta(request, source=via), via))
    if via == "one-click":
        # A mailbox provider posts in the background and nobody reads the answer: keep it small.
        return fixed_page(request, "one_click.html", _language(request, found))
    return page(
        request,
        "unsubscribed.html",
        _language(request, found),
        everything=False,
        list_name=found.list_name if found else "",
        preferences_url=preferences_url(web.site.base_url, web.optin.signer, sid, list_id),
    )
