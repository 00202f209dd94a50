"""Email address validation and normalization (email-validator, no DNS by default)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import ValidationError


class AddressError(ValidationError):
    """An address that cannot receive mail."""


def normalize_email(raw: str, check_dns: bool = False) -> str:
    """The canonical form we store: validated, trimmed, lowercased, IDN domains in Unicode."""
    text = (raw or "").strip()
    if not text:
        raise AddressError("empty email address")
    if len(text) > 320:
        raise AddressError("email address is too long")
    try:
        result = validate_email(text, check_deliverability=check_dns)
    except EmailNotValidError as exc:
        raise AddressError(f"invalid email address {text!r}: {exc}") from None
    return result.normalized.lower()
