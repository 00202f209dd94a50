"""GET/POST /preferences/{token}: language, name, lists, or leave everything.

The form carries a CSRF token (purpose "csrf", bound to the subscriber, valid two days), so a
page elsewhere that knows a preferences link still cannot post changes blindly.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from newsletter.audience.preferences import (
    PreferencesView,
    unsubscribe_all,
    update_preferences,
)
from newsletter.errors import ValidationError
from newsletter.tokens import TokenError
from newsletter.web.context import WebContext, web_context
from newsletter.web.forms import read_fields, request_meta
from newsletter.web.pages import N_, language_options, list_checkboxes, page, request_language
from newsletter.web.prepared import prepared_page

CSRF_MAX_AGE = 2 * 86400


def read_ids(web: WebContext, purpose: str, token: str) -> tuple[int, int]:
    """(subscriber_id, list_id) from a preferences or unsubscribe token; TokenError otherwise."""
    values = web.optin.signer.verify(purpose, token).values
    if len(values) != 2:
        raise TokenError("malformed token")
    return values[0], values[1]


def _render(request: Request, web: WebContext, view: PreferencesView, status: int = 200,
            saved: bool = False, error: str = "") -> Response:
    language = request_language(request, preference=view.language)
    csrf = web.optin.signer.sign("csrf", view.subscriber_id, timestamped=True)
    site = web.site.for_language(language)
    options = language_options(site, view.languages.offered, view.shown_language(language))
    return prepared_page(
        request,
        site,
        "preferences.html",
        language,
        status=status,
        fixed={"saved": saved, "error": error, "has_lists": bool(view.lists)},
        email=view.email,
        name=view.name,
        csrf=csrf,
        language_options=options,
        list_checkboxes=list_checkboxes(site, view.lists),
    )


async def preferences_page(request: Request) -> Response:
    """Show the subscriber's preferences form."""
    web = web_context(request)
    sid, list_id = read_ids(web, "preferences", request.path_params["token"])
    view = await web.preferences_view(sid, list_id)
    return _render(request, web, view)


def csrf_ok(web: WebContext, token: str, subscriber_id: int) -> bool:
    """True when a posted CSRF token is genuine, fresh and for this subscriber."""
    try:
        data = web.optin.signer.verify("csrf", token, max_age=CSRF_MAX_AGE)
    except TokenError:
        return False
    return data.values == (subscriber_id,)


async def preferences_post(request: Request) -> Response:
    """Save the form, or unsubscribe from all lists."""
    web = web_context(request)
    sid, list_id = read_ids(web, "preferences", request.path_params["token"])
    fields = await read_fields(request)
    view = await web.preferences_view(sid, list_id)
    if not csrf_ok(web, fields.get("csrf"), sid):
        language = request_language(request, preference=view.language)
        return page(request, "form_expired.html", language, status=403, back=request.url.path)
    meta = request_meta(request, source="preferences-page")
    if fields.get("action") == "unsubscribe_all":
        await web.write(unsubscribe_all, web.optin, subscriber_id=sid, meta=meta)
        language = request_language(request, preference=view.language)
        return page(
            request,
            "unsubscribed.html",
            language,
            everything=True,
            list_name="",
            preferences_url=request.url.path,
        )
    try:
        list_ids = {int(value) for value in fields.getlist("list")}
    except ValueError:
        return _render(request, web, view, 400, error=N_("Please check the form and try again."))
    try:
        view = await web.write(
            lambda: update_preferences(
                web.optin,
                subscriber_id=sid,
                list_id=list_id,
                name=fields.get("name"),
                language=fields.get("language") or view.language or "",
                list_ids=list_ids,
                meta=meta,
            )
        )
    except ValidationError as exc:
        field = getattr(exc, "field", "") or str(exc).split(":", 1)[0]
        message = {
            "name": N_("Your name is too long."),
            "language": N_("Please choose a language from the list."),
        }.get(field, N_("Please check the form and try again."))
        return _render(request, web, view, 400, error=message)
    return _render(request, web, view, saved=True)
