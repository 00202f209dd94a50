"""GET/POST /sign/{slug}: an organisation signs a statement; GET/POST /sign/verify/{token}:
its contact confirms by the mailed link (a button, as scanners only GET). The same link, with
action=data, downloads the signer's own data (web/rights.py), subscribed or not.

The same abuse protection as /subscribe: the per-IP limit, the honeypot, the web checks, and
the same answer whatever the address (new, duplicate or throttled).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from newsletter.audience.addresses import NonAsciiLocalPart
from newsletter.db.models import utcnow
from newsletter.errors import ValidationError
from newsletter.i18n import LANGUAGES
from newsletter.statements.countries import countries
from newsletter.statements.signatures import (
    SignRequest,
    StatementClosed,
    read_token,
    sign,
    verify,
)
from newsletter.statements.source import Statement, load_statement
from newsletter.web.context import web_context
from newsletter.web.forms import Fields, read_fields, request_meta
from newsletter.web.pages import N_, page, request_language
from newsletter.web.rights import signer_data_download
from newsletter.web.subscribe import HONEYPOT

TYPE_LABELS = {
    "ngo": N_("Non-governmental organisation"),
    "network": N_("Network or coalition"),
    "union": N_("Trade union"),
    "faith": N_("Faith-based organisation"),
    "academic": N_("Academic or research institution"),
    "community": N_("Community or grassroots group"),
    "other": N_("Other"),
}
FIELD_MESSAGES = {
    "organisation": N_("Please enter the name of your organisation."),
    "contact_name": N_("Please enter your name."),
    "country": N_("Please choose a country."),
    "organisation_type": N_("Please choose the type of your organisation."),
    "email": N_("Please enter a valid email address."),
    "email-ascii": N_(
        "The part before the @ must be plain ASCII, without accents or non-Latin letters: "
        "we cannot deliver to other addresses."
    ),
    "check": N_("We could not check that this request comes from a person. Please try again."),
}
VALUES = ("organisation", "country", "organisation_type", "contact_name", "email")


def _statement(request: Request) -> Statement:
    """The statement of the URL; NotFoundError (a 404 page) when there is none."""
    return load_statement(web_context(request).settings.workspace, request.path_params["slug"])


def _form(request: Request, statement: Statement, language: str, status: int = 200,
          error: str = "", values: dict[str, str] | None = None) -> Response:
    text = statement.text(language)
    return page(request, "sign.html", language, status=status, statement=text,
                html=text.html, countries=countries(language), types=TYPE_LABELS,
                list_slug=statement.list_slug, error=error, values=values or {},
                sign_languages=LANGUAGES)


def _closed(request: Request, statement: Statement, language: str) -> Response:
    return page(request, "sign_closed.html", language, status=410,
                title=statement.text(language).title)


async def sign_form(request: Request) -> Response:
    """The statement's text and the form, in the signer's language."""
    statement = _statement(request)
    language = request_language(request, allowed=LANGUAGES)
    if not statement.is_open(utcnow()):
        return _closed(request, statement, language)
    return _form(request, statement, language)


def _request(fields: Fields, language: str) -> SignRequest:
    return SignRequest(
        organisation=fields.get("organisation"), country=fields.get("country"),
        organisation_type=fields.get("organisation_type"),
        contact_name=fields.get("contact_name"), contact_email=fields.get("email"),
        language=language, listed=fields.get("listed") == "yes",
        newsletter=fields.get("newsletter") == "yes")


async def sign_post(request: Request) -> Response:
    """Record the signature, mail the verification link, answer "check your inbox"."""
    web = web_context(request)
    statement = _statement(request)
    fields = await read_fields(request)
    chosen = fields.get("language")
    language = request_language(request, preference=chosen if chosen in LANGUAGES else None,
                                allowed=LANGUAGES)
    if fields.get(HONEYPOT):
        return _answer(request, statement, language)  # a bot: pretend, do nothing
    for check in web.checks:
        if not await check(request, fields):
            return _invalid(request, statement, language, fields, "check")
    meta = request_meta(request, source=f"sign:{statement.slug}")
    try:
        await web.write(sign, web.optin, statement, _request(fields, language), meta)
    except StatementClosed:
        return _closed(request, statement, language)
    except ValidationError as exc:
        return _invalid(request, statement, language, fields, _field(exc))
    web.wake_outbox()
    return _answer(request, statement, language)


def _field(exc: ValidationError) -> str:
    if isinstance(exc, NonAsciiLocalPart):
        return "email-ascii"
    return getattr(exc, "field", "") or "email"


def _answer(request: Request, statement: Statement, language: str) -> Response:
    return page(request, "signed.html", language, title=statement.text(language).title)


def _invalid(request: Request, statement: Statement, language: str, fields: Fields,
             field: str) -> Response:
    message = FIELD_MESSAGES.get(field, N_("Please check the form and try again."))
    values: dict[str, Any] = {name: fields.get(name)[:320] for name in VALUES}
    return _form(request, statement, language, 400, message, values)


async def verify_page(request: Request) -> Response:
    """One button; the signature is confirmed by the POST, so link scanners change nothing."""
    web = web_context(request)
    read_token(web.optin, request.path_params["token"])  # TokenError: the broken-link page
    return page(request, "sign_verify.html", request_language(request))


async def verify_post(request: Request) -> Response:
    """Mark the signature verified; it then waits for the editors' review. With action=data
    (the page's "Download my data" button), the signer's own data instead."""
    web = web_context(request)
    if (await read_fields(request)).get("action") == "data":
        return await signer_data_download(request)
    result = await web.write(verify, web.optin, request.path_params["token"])
    language = request_language(request, preference=result.language)
    return page(request, "sign_verified.html", language, outcome=result.outcome)
