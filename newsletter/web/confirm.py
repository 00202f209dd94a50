"""GET/POST /confirm/{token}: a button to confirm (scanners only GET), and a way out of an
expired link (a fresh confirmation mail) or a broken one (the generic manage page).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from newsletter.audience.optin import (
    LinkExpired,
    confirm,
    read_confirm_token,
    resend_confirmation,
)
from newsletter.errors import NotFoundError
from newsletter.tokens import TokenError
from newsletter.web.context import WebContext, web_context
from newsletter.web.forms import read_fields, request_meta
from newsletter.web.pages import page, request_language


async def _languages(
    web: WebContext, subscriber_id: int, list_id: int
) -> tuple[str | None, str, str]:
    """(subscriber's language, list default, list name); NotFoundError when either is gone."""
    found = await web.membership_of(subscriber_id, list_id)
    if found is None:
        raise NotFoundError("this subscription no longer exists")
    return found.language, found.default_language, found.list_name


async def _invalid(request: Request, exc: TokenError) -> Response:
    """Expired: offer a new mail. Forged or broken: explain and point to /manage."""
    if isinstance(exc, LinkExpired):
        web = web_context(request)
        pref, default, list_name = await _languages(web, exc.subscriber_id, exc.list_id)
        language = request_language(request, preference=pref, default=default)
        return page(request, "confirm_expired.html", language, status=410, list_name=list_name)
    language = request_language(request)
    return page(request, "link_invalid.html", language, status=400)


async def confirm_page(request: Request) -> Response:
    """Show one button; confirming needs a POST so prefetching scanners change nothing."""
    web = web_context(request)
    token = request.path_params["token"]
    try:
        sid, list_id, _issued = read_confirm_token(web.optin, token)
    except TokenError as exc:
        return await _invalid(request, exc)
    pref, default, list_name = await _languages(web, sid, list_id)
    language = request_language(request, preference=pref, default=default)
    return page(request, "confirm.html", language, list_name=list_name)


async def confirm_post(request: Request) -> Response:
    """Confirm (or, for an expired link, send a new confirmation mail)."""
    web = web_context(request)
    token = request.path_params["token"]
    fields = await read_fields(request)
    meta = request_meta(request, source="confirm-page")
    if fields.get("action") == "resend":
        try:
            list_name, lang = await web.write(resend_confirmation, web.optin, token, meta=meta)
        except TokenError as exc:
            return await _invalid(request, exc)
        web.wake_outbox()
        language = request_language(request, preference=lang)
        return page(request, "resent.html", language, list_name=list_name)
    try:
        result = await web.write(confirm, web.optin, token, meta=meta)
    except TokenError as exc:
        return await _invalid(request, exc)
    web.wake_outbox()
    language = request_language(request, preference=result.language)
    return page(
        request,
        "confirmed.html",
        language,
        outcome=result.outcome,
        list_name=result.list_name,
        preferences_url=result.preferences_url,
    )
