"""Signed tokens that carry who a link is for, so subscribers never log in.

A token is `payload.signature`, both base64url without padding. The payload is a few integers
joined by ":"; the signature is HMAC-SHA256 over purpose + payload, truncated to 128 bits.
The purpose (confirm, preferences, unsubscribe, verp, csrf, sign) is part of the MAC, so a token
made for one purpose never works for another. Signing takes about two microseconds (the
HMAC's two SHA-256 states keyed once and copied per token), which matters: the sender signs
three per message.

Key rotation: tokens are signed with the current secret key and accepted with it or any of the
old keys (`[newsletter] old_secret_keys`). Addresses are hashed with a key that never rotates:
see newsletter.keyring.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass

from newsletter.errors import NewsletterError

PURPOSES = ("confirm", "preferences", "unsubscribe", "verp", "csrf", "sign")


class TokenError(NewsletterError):
    """A token is malformed, forged, of the wrong purpose or expired."""


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def hmac_pads(key: str) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer padded keys for `key` (RFC 2104): HMAC is then
    sha256(outer + sha256(inner + message)), so a hash state can hold a padded key already."""
    data = key.encode()
    if len(data) > 64:
        data = hashlib.sha256(data).digest()
    data = data.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in data), bytes(b ^ 0x5C for b in data)


class KeyedHmac:
    """HMAC-SHA256 with one key, kept as its two SHA-256 states with the padded keys already
    absorbed: copying and finishing them per message is about twice as fast as copying an
    hmac.HMAC, whose copy() is Python code around the same C objects."""

    __slots__ = ("inner", "outer")

    def __init__(self, key: str) -> None:
        ipad, opad = hmac_pads(key)
        self.inner, self.outer = hashlib.sha256(ipad), hashlib.sha256(opad)

    def digest(self, message: bytes) -> bytes:
        inner, outer = self.inner.copy(), self.outer.copy()
        inner.update(message)
        outer.update(inner.digest())
        return outer.digest()

    def prefixed(self, prefix: bytes) -> KeyedHmac:
        """The same HMAC with `prefix` already absorbed: `prefixed(p).digest(m)` is
        `digest(p + m)`, without joining p and m per token (a signer keeps one per purpose)."""
        mac = KeyedHmac.__new__(KeyedHmac)
        mac.inner, mac.outer = self.inner.copy(), self.outer
        mac.inner.update(prefix)
        return mac


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenData:
    """What a verified token says."""

    purpose: str
    values: tuple[int, ...]
    issued_at: int | None = None


class Signer:
    """Make and check tokens with the current key and a grace list of old keys."""

    def __init__(self, secret_key: str, old_keys: Sequence[str] = ()) -> None:
        if not secret_key:
            raise TokenError(
                "no secret key is set: set NEWSLETTER_SECRET_KEY or [newsletter] secret_key"
            )
        self._macs = [KeyedHmac(k) for k in (secret_key, *old_keys) if k]
        self._purposes = {purpose: self._macs[0].prefixed(b"%s|" % purpose.encode())
                          for purpose in PURPOSES}

    def sign(self, purpose: str, *values: int, timestamped: bool = False) -> str:
        """A token for `values` (ids), optionally carrying its issue time for expiry."""
        mac = self._purposes.get(purpose)
        if mac is None:
            raise ValueError(f"unknown token purpose {purpose!r}")
        text = ":".join(map(str, values))
        if timestamped:
            text = f"{text}:t{int(time.time())}" if values else f"t{int(time.time())}"
        payload = _b64(text.encode("ascii"))
        return (payload + b"." + _b64(mac.digest(payload)[:16])).decode()

    def verify(self, purpose: str, token: str, max_age: float | None = None) -> TokenData:
        """Check a token; raise TokenError unless it is genuine, of this purpose and fresh."""
        if not isinstance(token, str) or len(token) > 512 or token.count(".") != 1:
            raise TokenError("malformed token")
        payload, signature = token.split(".")
        # Compare the text, not decoded bytes: base64 has several spellings of the same bytes,
        # and a token must have exactly one.
        given = signature.encode()
        message = f"{purpose}|{payload}".encode()
        for mac in self._macs:
            if hmac.compare_digest(given, _b64(mac.digest(message)[:16])):
                break
        else:
            raise TokenError("invalid token")
        try:
            fields = _unb64(payload).decode("ascii").split(":")
        except (ValueError, UnicodeDecodeError):
            raise TokenError("malformed token") from None
        issued = None
        if fields and fields[-1].startswith("t"):
            issued = int(fields.pop()[1:])
        if max_age is not None and (issued is None or time.time() - issued > max_age):
            raise TokenError("expired token")
        try:
            values = tuple(map(int, fields))
        except ValueError:
            raise TokenError("malformed token") from None
        return TokenData(purpose=purpose, values=values, issued_at=issued)

