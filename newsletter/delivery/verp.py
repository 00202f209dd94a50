"""VERP: a per-delivery envelope sender, so a bounce names the delivery that caused it.

`bounces+TOKEN@bounces.example.org`, where TOKEN = signer.sign("verp", delivery_id). The token
is an HMAC over the delivery id (never the subscriber's address), so a forged bounce cannot
mark someone else's delivery failed, and the address leaks nothing. Tokens use only
base64url characters and one dot, all valid in an unquoted local part.
"""

from __future__ import annotations

from email.utils import parseaddr

from newsletter.config import ConfigError, Settings
from newsletter.delivery.headers import AddressError, ascii_address
from newsletter.tokens import Signer, TokenError


def verp_parts(settings: Settings) -> tuple[str, str]:
    """The constant prefix (`bounces+`) and suffix (`@domain`) around every VERP token."""
    section = settings.bounces
    try:
        sample = ascii_address(f"{section.local_part}@{section.domain}")
    except AddressError as exc:
        raise ConfigError(f"[bounces] local_part and domain: {exc}") from None
    local, _, domain = sample.rpartition("@")
    return f"{local}+", f"@{domain}"


def encode_verp(settings: Settings, signer: Signer, delivery_id: int) -> str:
    """The VERP envelope sender for one delivery."""
    prefix, suffix = verp_parts(settings)
    return f"{prefix}{signer.sign('verp', delivery_id)}{suffix}"


def decode_verp(address: str, signer: Signer) -> int | None:
    """The delivery id a bounce address carries, or None if it is not a genuine VERP address."""
    if not isinstance(address, str) or len(address) > 320:
        return None
    _name, addr = parseaddr(address.strip())
    local = (addr or address).strip("<> ").rpartition("@")[0]
    if "+" not in local:
        return None
    token = local.rpartition("+")[2]
    try:
        data = signer.verify("verp", token)
    except TokenError:
        return None
    if len(data.values) != 1 or data.values[0] < 0:
        return None
    return data.values[0]
