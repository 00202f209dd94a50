"""DKIM: is the key published at selector._domainkey.domain the one we sign with?"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from dkim.crypto import UnparsableKeyError, parse_pem_private_key, parse_public_key  # type: ignore[import-untyped]

from newsletter.delivery.dkim import DkimError, dns_record, load_dkim
from newsletter.doctor.checks import CheckResult, fail, ok, warn

if TYPE_CHECKING:
    from newsletter.doctor.context import DoctorContext

NAME = "dkim"


def tags(record: str) -> dict[str, str]:
    """`k=v; k=v` tag list (DKIM, DMARC) as a dict; whitespace inside values dropped."""
    out: dict[str, str] = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip().lower()] = "".join(value.split())
    return out


def _public_numbers(p: str) -> tuple[int, int] | None:
    """(modulus, exponent) of a published p= key; None when it is not an RSA key."""
    try:
        key = parse_public_key(base64.b64decode(p, validate=True))
    except (binascii.Error, UnparsableKeyError, ValueError, IndexError, TypeError):
        return None
    return key["modulus"], key["publicExponent"]


def check_dkim(ctx: DoctorContext) -> CheckResult:
    """The published public key matches the configured private key."""
    try:
        signer = load_dkim(ctx.settings)
    except DkimError as exc:
        return fail(NAME, str(exc), "fix the [dkim] settings named above")
    if signer is None:
        return warn(NAME, "DKIM signing is off ([dkim] key_path is empty)",
                    "make a key (openssl genrsa -out dkim.pem 2048), set [dkim] key_path and "
                    "selector, and publish the record `newsletter doctor` then shows")
    name, expected = dns_record(signer)
    publish = f'publish a TXT record at {name}: "{expected}"'
    records = [tags(t) for t in ctx.dns.txt(name)]
    records = [r for r in records if "p" in r]
    if not records:
        return fail(NAME, f"no DKIM key published at {name}", publish)
    if not records[0]["p"]:
        return fail(NAME, f"the key at {name} is revoked (empty p=)", publish)
    private = parse_pem_private_key(signer.private_key)
    wanted = (private["modulus"], private["publicExponent"])
    published = _public_numbers(records[0]["p"])
    if published is None:
        return fail(NAME, f"the key at {name} is not a readable RSA key", publish)
    if published != wanted:
        return fail(NAME, f"the key at {name} does not match [dkim] key_path "
                    "(receivers will see every signature fail)", f"replace it: {publish}")
    bits = private["modulus"].bit_length()
    return ok(NAME, f"{name} publishes the public half of [dkim] key_path ({bits}-bit RSA)")
