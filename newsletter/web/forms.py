"""Reading what a browser or a script posted, with hard limits and strict UTF-8.

Starlette's own parser quietly falls back to Latin-1 on bad bytes; here bad input is a
FormError with an HTTP status, so the page can say so (in the visitor's language) instead of
storing mojibake or answering 500. Three body types are accepted: urlencoded, multipart (no
files) and JSON (an object of strings or lists of strings).
"""

from __future__ import annotations

import json
from email import policy
from email.parser import BytesParser
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request

from newsletter.audience.audit import RequestMeta

MAX_BODY = 16 * 1024
MAX_FIELDS = 64
MAX_VALUE = 4096


class FormError(Exception):
    """The body cannot be read: too large, not UTF-8, malformed, or of an unknown type."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Fields:
    """Posted fields: every name maps to its values, in order."""

    def __init__(self, pairs: list[tuple[str, str]], is_json: bool = False) -> None:
        self.is_json = is_json
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            if len(value) > MAX_VALUE:
                raise FormError(413, f"field {name!r} is too long")
            self._values.setdefault(name, []).append(value)

    def get(self, name: str, default: str = "") -> str:
        """The first value of a field."""
        values = self._values.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        """All values of a field (checkboxes)."""
        return list(self._values.get(name, []))

    def __contains__(self, name: str) -> bool:
        return name in self._values


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refusing anything over `limit` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared and (not declared.isdigit() or int(declared) > limit):
        raise FormError(413, "the request is too large")
    chunks: list[bytes] = []
    size = 0
    receive = request.receive  # the messages themselves: Request.stream's generator cost more
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()  # what Request.stream raises
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise FormError(413, "the request is too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError(400, f"{what} is not valid UTF-8") from None


def _urlencoded(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            _utf8(body, "the form"),
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS,
            encoding="utf-8",
            errors="strict",
        )
    except UnicodeDecodeError:
        raise FormError(400, "the form is not valid UTF-8") from None
    except ValueError:
        raise FormError(400, "the form has too many fields") from None


def _multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise FormError(400, "the multipart form is malformed")
    pairs: list[tuple[str, str]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename():
            raise FormError(400, "the multipart form has an unnamed part or a file")
        payload = part.get_payload(decode=True)
        pairs.append(
            (name, _utf8(payload if isinstance(payload, bytes) else b"", f"field {name!r}"))
        )
        if len(pairs) > MAX_FIELDS:
            raise FormError(400, "the form has too many fields")
    return pairs


def _json(body: bytes) -> list[tuple[str, str]]:
    try:
        data = json.loads(_utf8(body, "the JSON body"))
    except json.JSONDecodeError as exc:
        raise FormError(400, f"the JSON body is malformed: {exc.msg}") from None
    except ValueError:  # an integer of more than sys.get_int_max_str_digits() digits
        raise FormError(400, "the JSON body has a number that is too long") from None
    except RecursionError:  # thousands of nested brackets
        raise FormError(400, "the JSON body is nested too deeply") from None
    if not isinstance(data, dict) or len(data) > MAX_FIELDS:
        raise FormError(400, "the JSON body must be an object")
    pairs: list[tuple[str, str]] = []
    for name, value in data.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                raise FormError(400, f"field {name!r} must be text")
            pairs.append((name, str(item)))
    return pairs


def is_json_request(request: Request) -> bool:
    """True when the caller posts JSON (and so wants JSON back)."""
    return (
        request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"
    )


async def read_fields(request: Request) -> Fields:
    """Parse the body by its Content-Type into Fields; FormError on anything wrong."""
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    body = await read_body(request)
    if kind == "application/x-www-form-urlencoded":
        return Fields(_urlencoded(body))
    if kind == "multipart/form-data":
        return Fields(_multipart(content_type, body))
    if kind == "application/json":
        return Fields(_json(body), is_json=True)
    if not body:
        return Fields([])
    raise FormError(415, "unsupported content type")


def request_meta(
    request: Request, source: str | None = None, consent: str | None = None
) -> RequestMeta:
    """IP, user agent and source of a request for the audit trail."""
    headers = request.headers
    return RequestMeta(
        ip=request.client.host if request.client else None,
        user_agent=headers.get("user-agent"),
        source=source or headers.get("referer") or headers.get("origin") or str(request.url),
        consent_text=consent,
    )
