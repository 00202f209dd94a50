"""The subscriber's own data rights from the preferences link: download it, delete it.

- POST /preferences/{token}/data: the JSON of audience/portability.export_data (art. 15, 20).
- POST /sign/verify/{token} with action=data (web/sign.py): the same JSON for the person who
  signed with that link, subscribed or not.
- GET /preferences/{token}/delete: what deleting means, and a button.
- POST /preferences/{token}/delete: audience/erasure.erase, the same erasure as the CLI's
  `subscribers remove EMAIL` (art. 17); the address stays only as a keyed suppression hash.

Both POSTs carry the preferences page's CSRF token, like its other forms.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.errors import NotFoundError
from newsletter.statements.signatures import signer_address
from newsletter.web.context import web_context
from newsletter.web.forms import read_fields
from newsletter.web.pages import page, request_language
from newsletter.web.preferences import csrf_ok, read_ids

DOWNLOAD_NAME = "newsletter-my-data.json"


def _back(request: Request) -> str:
    """The preferences page this request came from: /preferences/<token>."""
    return request.url.path.rsplit("/", 1)[0]


async def _checked(request: Request) -> tuple[int, str] | Response:
    """(subscriber id, page language) when the CSRF token is good; else the expired page."""
    web = web_context(request)
    sid, list_id = read_ids(web, "preferences", request.path_params["token"])
    fields = await read_fields(request)
    try:
        language = (await web.preferences_view(sid, list_id)).language
    except NotFoundError:
        language = None  # already erased: the answer below says so
    chosen = request_language(request, preference=language)
    if not csrf_ok(web, fields.get("csrf"), sid):
        return page(request, "form_expired.html", chosen, status=403, back=_back(request))
    return sid, chosen


async def data_download(request: Request) -> Response:
    """The subscriber's data as a JSON file."""
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    web = web_context(request)
    export = web.services.audience.export_data
    return _download(await run_in_threadpool(lambda: export(subscriber_id=checked[0])))


async def signer_data_download(request: Request) -> Response:
    """The data of the person whose signature link this is (a signatory need not subscribe);
    a broken link or an erased contact gets the broken-link page."""
    web = web_context(request)
    address = await run_in_threadpool(signer_address, web.optin, request.path_params["token"])
    return _download(await run_in_threadpool(web.services.audience.export_data, address))


def _download(data: dict[str, Any]) -> Response:
    body = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="{DOWNLOAD_NAME}"',
    })


async def delete_page(request: Request) -> Response:
    """Ask before deleting: what goes, what stays."""
    web = web_context(request)
    sid, list_id = read_ids(web, "preferences", request.path_params["token"])
    view = await web.preferences_view(sid, list_id)
    language = request_language(request, preference=view.language)
    csrf = web.optin.signer.sign("csrf", sid, timestamped=True)
    return page(request, "delete.html", language, view=view, csrf=csrf, back=_back(request))


async def delete_post(request: Request) -> Response:
    """Erase the subscriber; a repeat finds nothing left and answers the same."""
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    sid, language = checked
    web = web_context(request)
    await web.write(web.services.audience.erase, subscriber_id=sid, source="preferences-page")
    return page(request, "deleted.html", language)
