"""GET/POST /subscribe/{list}: our own form, a plain form post from the organisation's site,
or a JSON post from a script. Every accepted post gets the same answer, whoever the address is.
"""

from __future__ import annotations

from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.audience.addresses import NonAsciiLocalPart
from newsletter.audience.jobs import queue_subscribe
from newsletter.audience.language import FALL_BACK, ListLanguages
from newsletter.audience.lists import localized_list
from newsletter.audience.optin import RateLimited
from newsletter.errors import NotFoundError, ValidationError
from newsletter.links import subscribe_url
from newsletter.web.context import WebContext, cors_headers, web_context
from newsletter.web.forms import Fields, FormError, is_json_request, read_fields, request_meta
from newsletter.web.pages import N_, page, request_language, translator

HONEYPOT = "website"

# Field errors shown to people; the service's own messages are for logs.
FIELD_MESSAGES = {
    "email": N_("Please enter a valid email address."),
    "email-ascii": N_(
        "The part before the @ must be plain ASCII, without accents or non-Latin letters: "
        "we cannot deliver to other addresses."
    ),
    "name": N_("Your name is too long."),
    "check": N_("We could not check that this request comes from a person. Please try again."),
}


def consent_text(web: WebContext, language: str, list_name: str) -> str:
    """The consent sentence shown under the form, as configured or translated."""
    texts = web.site.consent_texts
    configured = texts.get(language) or texts.get(web.site.default_language)
    if configured:
        return configured
    _ = translator(language)
    return _(
        "I agree to receive %(list)s by email. I can unsubscribe at any time with the link in "
        "every message.",
        list=list_name,
    )


async def _list(web: WebContext, slug: str) -> dict[str, Any]:
    return await web.read(web.services.audience.form_list, slug)


def _form_page(
    request: Request,
    mlist: dict[str, Any],
    language: str,
    status: int = 200,
    error: str = "",
    values: dict[str, str] | None = None,
) -> Response:
    web = web_context(request)
    mlist = localized_list(mlist, language)
    return page(
        request,
        "subscribe.html",
        language,
        status=status,
        mlist=mlist,
        list_languages=ListLanguages.of(mlist).offered,
        consent=consent_text(web, language, mlist["name"]),
        source=subscribe_url(web.site.base_url, mlist["slug"]),
        error=error,
        values=values or {},
    )


def _answer(request: Request, mlist: dict[str, Any], language: str, json_wanted: bool) -> Response:
    web = web_context(request)
    single = mlist["opt_in"] == "single"
    _ = translator(language)
    if json_wanted:
        message = (
            _("Thank you, you are subscribed.")
            if single
            else _("Thank you. Please check your inbox to confirm your subscription.")
        )
        status = "subscribed" if single else "check-inbox"
        return JSONResponse(
            {"status": status, "message": message}, headers=cors_headers(web, request)
        )
    return page(request, "subscribed.html", language, mlist=localized_list(mlist, language),
                single=single)


def _json_error(request: Request, status: int, field: str, message: str) -> Response:
    headers = cors_headers(web_context(request), request)
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


async def subscribe_form(request: Request) -> Response:
    """Show the form: email, name, language among the list's, consent text."""
    web = web_context(request)
    mlist = await _list(web, request.path_params["slug"])
    offered = ListLanguages.of(mlist)
    language = request_language(request, default=offered.default, allowed=offered.offered)
    return _form_page(request, mlist, language)


async def subscribe_post(request: Request) -> Response:
    """Record the request, queue one confirmation mail, answer "check your inbox"."""
    web = web_context(request)
    json_wanted = is_json_request(request)
    mlist = await _list(web, request.path_params["slug"])
    offered = ListLanguages.of(mlist)
    language = request_language(request, default=offered.default, allowed=offered.offered)
    try:
        fields = await read_fields(request)
    except FormError as exc:
        if json_wanted:
            return _json_error(request, exc.status, "", exc.reason)
        raise
    # The newsletter's language: the one chosen, else the page's, and the list's default for
    # one it does not offer. The page goes on in a language it is translated into.
    chosen = offered.accept(fields.get("language") or language, FALL_BACK)
    language = request_language(
        request, preference=chosen, default=language, allowed=offered.offered
    )
    if fields.get(HONEYPOT):
        return _answer(request, mlist, language, json_wanted)  # a bot: pretend, do nothing
    for check in web.checks:
        if not await check(request, fields):
            return _invalid(request, mlist, language, fields, "check", json_wanted, 400)
    if not fields.get("email").strip():
        return _invalid(request, mlist, language, fields, "email", json_wanted, 400)
    consent = consent_text(web, language, localized_list(mlist, language)["name"])
    meta = request_meta(request, fields.get("source")[:512] or None, consent)
    try:
        # The same work whatever the address; what depends on it runs after the answer.
        job = await web.write(
            queue_subscribe,
            web.optin,
            list_slug=mlist["slug"],
            email=fields.get("email"),
            name=fields.get("name"),
            language=chosen,
            meta=meta,
        )
    except ValidationError as exc:
        return _invalid(request, mlist, language, fields, invalid_field(exc), json_wanted, 400)
    except RateLimited:
        if json_wanted:
            return _json_error(request, 429, "", "too many requests; try again later")
        raise
    response = _answer(request, mlist, language, json_wanted)
    response.background = BackgroundTask(web.run_job, job)
    return response


def invalid_field(exc: ValidationError) -> str:
    """The FIELD_MESSAGES key for a refused value: email, email-ascii or name."""
    if isinstance(exc, NonAsciiLocalPart):
        return "email-ascii"
    return getattr(exc, "field", "") or str(exc).split(":", 1)[0]


def _invalid(
    request: Request,
    mlist: dict[str, Any],
    language: str,
    fields: Fields,
    field: str,
    json_wanted: bool,
    status: int,
) -> Response:
    message = FIELD_MESSAGES.get(field, N_("Please check the form and try again."))
    if json_wanted:
        text = translator(language)(message)
        return _json_error(request, status, field.split("-")[0], text)
    values = {"email": fields.get("email")[:320], "name": fields.get("name")[:200]}
    return _form_page(request, mlist, language, status, message, values)


async def subscribe_preflight(request: Request) -> Response:
    """CORS preflight for scripts on the organisation's site that post JSON."""
    web = web_context(request)
    headers = cors_headers(web, request)
    if not headers:
        raise NotFoundError("cross-origin requests are not allowed from this origin")
    headers.update(
        {
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "86400",
        }
    )
    return Response(status_code=204, headers=headers)
