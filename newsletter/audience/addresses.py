"""Email address validation and normalization (email-validator, no DNS by default).

One rule for every way in (the web form, the importer, the CLI): the part before the @ must be
ASCII, because mail leaves through relays that may not offer SMTPUTF8 (RFC 6531), so
`jörg@example.org` could be stored but never delivered. The domain may be an IDN: it is stored
in its Unicode form (`x@xn--exmple-cua.org` and `x@exämple.org` are one subscriber) and
written in punycode on the wire (newsletter.delivery.headers.ascii_address).

Imports validate a million addresses, and most of email-validator's time goes into checking
the domain, which repeats across rows. So a plain ASCII dot-atom local part is checked with a
strict pattern and the domain's verdict is cached; anything else (quoted or non-ASCII local
parts, odd lengths) goes through email-validator whole. Both paths give the same result.
"""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import ValidationError

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
PLAIN_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")


class AddressError(ValidationError):
    """An address that cannot receive mail."""

    field = "email"


class NonAsciiLocalPart(AddressError):
    """An address whose part before the @ has non-ASCII letters: we cannot deliver to it."""


NON_ASCII_RULE = (
    "the part before the @ must be plain ASCII, without accents or non-Latin letters "
    "(our mail relay cannot deliver to anything else)"
)


def _invalid(text: str, exc: EmailNotValidError) -> AddressError:
    return AddressError(f"invalid email address {text!r}: {exc}")


@lru_cache(maxsize=8192)
def _domain(domain: str, check_dns: bool) -> str:
    return validate_email(f"x@{domain}", check_deliverability=check_dns).domain


def normalize_email(raw: str, check_dns: bool = False) -> str:
    """The canonical form we store: validated, trimmed, lowercased, IDN domains in Unicode."""
    text = (raw or "").strip()
    if not text:
        raise AddressError("empty email address")
    if len(text) > 254:
        raise AddressError(f"email address is too long ({len(text)} characters)")
    local, at, domain = text.rpartition("@")
    if at and text.isascii() and len(local) <= 64 and PLAIN_LOCAL.fullmatch(local):
        try:
            return f"{local}@{_domain(domain, check_dns)}".lower()
        except EmailNotValidError as exc:
            raise _invalid(text, exc) from None
    if not local.isascii():
        raise NonAsciiLocalPart(f"invalid email address {text!r}: {NON_ASCII_RULE}")
    try:
        # allow_smtputf8=False keeps the rule above even where the split on "@" was wrong.
        result = validate_email(text, check_deliverability=check_dns, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise _invalid(text, exc) from None
    return result.normalized.lower()
