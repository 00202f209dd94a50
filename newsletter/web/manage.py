"""GET/POST /manage: the generic page linked from the public archive, where no personal link
may appear. It explains the personal link in every mail, and mails it again on request; the
answer is the same whether or not the address is known.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from newsletter.audience.preferences import send_preferences_link
from newsletter.errors import ValidationError
from newsletter.web.context import web_context
from newsletter.web.forms import read_fields, request_meta
from newsletter.web.pages import N_, page, request_language
from newsletter.web.subscribe import HONEYPOT


async def manage_page(request: Request) -> Response:
    """Explain personal links and offer to mail one."""
    return page(request, "manage.html", request_language(request), error="", email="")


async def manage_post(request: Request) -> Response:
    """Queue a preferences link for a known address; answer "check your inbox" regardless."""
    web = web_context(request)
    fields = await read_fields(request)
    language = request_language(request, preference=fields.get("language") or None)
    if fields.get(HONEYPOT):
        return page(request, "manage_sent.html", language)
    for check in web.checks:
        if not await check(request, fields):
            return page(
                request,
                "manage.html",
                language,
                status=400,
                email=fields.get("email")[:320],
                error=N_(
                    "We could not check that this request comes from a person. Please try again."
                ),
            )
    try:
        await web.write(
            lambda: send_preferences_link(
                web.optin,
                email=fields.get("email"),
                language=language,
                meta=request_meta(request, "manage-page"),
            )
        )
    except ValidationError:
        return page(
            request,
            "manage.html",
            language,
            status=400,
            email=fields.get("email")[:320],
            error=N_("Please enter a valid email address."),
        )
    web.wake_outbox()
    return page(request, "manage_sent.html", language)
