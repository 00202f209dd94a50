"""GET/POST /manage: the generic page linked from the public archive, where no personal link
may appear. It explains the personal link in every mail, and mails it again on request; the
answer is the same whether or not the address is known.
"""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from newsletter.audience.jobs import queue_preferences_link
from newsletter.errors import ValidationError
from newsletter.web.context import web_context
from newsletter.web.forms import read_fields, request_meta
from newsletter.web.pages import N_, page, request_language
from newsletter.web.subscribe import FIELD_MESSAGES, HONEYPOT, invalid_field


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
        # The same work for a known or unknown address; the lookup runs after the answer.
        job = await web.write(
            lambda: queue_preferences_link(
                web.optin,
                email=fields.get("email"),
                language=language,
                meta=request_meta(request, "manage-page"),
            )
        )
    except ValidationError as exc:
        return page(
            request,
            "manage.html",
            language,
            status=400,
            email=fields.get("email")[:320],
            error=FIELD_MESSAGES[invalid_field(exc)],
        )
    response = page(request, "manage_sent.html", language)
    response.background = BackgroundTask(web.run_job, job)
    return response
