"""DKIM signing with the operator's key (dkimpy), loaded and checked once per run.

The signature covers the headers that providers look at for one-click unsubscribe and
feedback loops (STANDARDS.md): without List-Unsubscribe and List-Unsubscribe-Post in h=,
Gmail and Yahoo do not offer the one-click button. Headers listed here but absent from a
message (Reply-To when none is configured) are signed as absent, so nobody can add them later.
Canonicalization is relaxed/relaxed, which survives the header re-folding some relays do.

Speed: dkimpy signs with pure-Python RSA, about 6.5 ms a message. When the `cryptography`
package is installed (extra `fast`), the signature is computed here instead: relaxed
canonicalization of our own CRLF messages (RFC 6376 §3.4.2, §3.4.4), SHA-256, and OpenSSL's
RSA, about 0.5 ms. The tests check both ways with dkimpy's verifier; any message that is not
strictly CRLF goes through dkimpy.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

import dkim  # type: ignore[import-untyped]
from dkim.crypto import UnparsableKeyError, parse_pem_private_key  # type: ignore[import-untyped]

from newsletter.config import Settings
from newsletter.delivery.headers import AddressError, ascii_address
from newsletter.errors import NewsletterError

try:  # optional: OpenSSL's RSA is ~25x faster than dkimpy's pure-Python one
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
except ImportError:  # pragma: no cover - exercised when the extra is not installed
    serialization = None  # type: ignore[assignment]

SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id",
    b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id", b"mime-version",
    b"content-type", b"content-language",
)
MIN_KEY_BITS = 1024  # RFC 8301: verifiers must refuse shorter RSA keys
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?"
_SELECTOR = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


class DkimError(NewsletterError):
    """The DKIM key or its settings cannot be used."""


@dataclass(frozen=True, slots=True)
class DkimSigner:
    """Signs finished messages for one domain and selector."""

    domain: bytes
    selector: bytes
    private_key: bytes  # PEM, LF line endings (what dkimpy parses)
    headers: tuple[bytes, ...] = SIGNED_HEADERS
    rsa_key: Any = field(default=None, repr=False, compare=False)  # cryptography key or None

    @property
    def engine(self) -> str:
        """Which RSA implementation signs: "openssl" (cryptography) or "dkimpy"."""
        return "openssl" if self.rsa_key is not None else "dkimpy"

    def sign(self, message: bytes) -> bytes:
        """The DKIM-Signature header (CRLF-terminated) to put in front of `message`."""
        if self.rsa_key is not None and _strict_crlf(message):
            return self._sign_fast(message)
        return self.sign_with_dkimpy(message)

    def _sign_fast(self, message: bytes) -> bytes:
        head, _, body = message.partition(b"\r\n\r\n")
        body_hash = base64.b64encode(hashlib.sha256(_relaxed_body(body)).digest())
        tags = (b"v=1; a=rsa-sha256; c=relaxed/relaxed; d=" + self.domain + b"; s="
                + self.selector + b";\r\n t=" + str(int(time.time())).encode("ascii")
                + b"; h=" + _fold_names(self.headers) + b";\r\n bh=" + body_hash + b";\r\n b=")
        digest = hashlib.sha256()
        for name in _select(_fields(head), self.headers):
            digest.update(name)
        digest.update(_relaxed_field(b"DKIM-Signature", b" " + tags)[:-2])
        signature = self.rsa_key.sign(digest.digest(), padding.PKCS1v15(),
                                      utils.Prehashed(hashes.SHA256()))
        encoded = base64.b64encode(signature)
        folded = b"\r\n ".join(encoded[i : i + 72] for i in range(0, len(encoded), 72))
        return b"DKIM-Signature: " + tags + folded + b"\r\n"

    def sign_with_dkimpy(self, message: bytes) -> bytes:
        """The same signature computed entirely by dkimpy (the reference; slow RSA)."""
        return dkim.sign(
            message,
            self.selector,
            self.domain,
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(self.headers),
            linesep=b"\r\n",
        )


def load_dkim(settings: Settings) -> DkimSigner | None:
    """The signer for [dkim], or None when no key is configured; a clear error if it is unusable."""
    section = settings.dkim
    if not section.key_path:
        return None
    path = settings.path(section.key_path)
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise DkimError(f"[dkim] key_path: cannot read {path}: {exc.strerror or exc}") from None
    pem = pem.replace(b"\r\n", b"\n")
    try:
        key = parse_pem_private_key(pem)
    except (UnparsableKeyError, ValueError, IndexError, TypeError):
        raise DkimError(f"[dkim] key_path: {path} is not a PEM RSA private key "
                        "(make one with: openssl genrsa -out dkim.pem 2048)") from None
    if key["modulus"].bit_length() < MIN_KEY_BITS:
        raise DkimError(f"[dkim] key_path: {path}: RSA keys under {MIN_KEY_BITS} bits are refused "
                        "by receivers; use 2048")
    selector = section.selector.strip()
    if not selector:
        raise DkimError("[dkim] selector: required when [dkim] key_path is set "
                        "(the DNS record is <selector>._domainkey.<domain>)")
    if not _SELECTOR.fullmatch(selector):
        raise DkimError(f"[dkim] selector: not a DNS label: {selector!r}")
    domain = section.domain.strip() or settings.newsletter.from_address.rpartition("@")[2]
    try:
        domain = ascii_address(f"dkim@{domain}").rpartition("@")[2].lower()
    except AddressError:
        raise DkimError(f"[dkim] domain: not a domain name: {domain!r} "
                        "(set [dkim] domain or a valid [newsletter] from_address)") from None
    return DkimSigner(domain=domain.encode("ascii"), selector=selector.encode("ascii"),
                      private_key=pem, rsa_key=_openssl_key(pem))


def _openssl_key(pem: bytes) -> Any:
    """The key for OpenSSL signing, or None when `cryptography` is missing or disagrees."""
    if serialization is None:
        return None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, rsa.RSAPrivateKey) else None


_WSP = re.compile(rb"[ \t]+")
_WSP_TO_FIX = re.compile(rb"\t[ \t]*| [ \t]+")  # only runs that are not already one space


def _strict_crlf(message: bytes) -> bool:
    """True when every line ends in CRLF and there is a header/body separator."""
    crlf = message.count(b"\r\n")
    return (crlf == message.count(b"\n") == message.count(b"\r")
            and b"\r\n\r\n" in message)


def _relaxed_body(body: bytes) -> bytes:
    """RFC 6376 §3.4.4: no trailing WSP, WSP runs as one space, no empty lines at the end."""
    # Our bodies are quoted-printable text, then base64 HTML, which has no spaces: the regex
    # runs only over the lines from the first tab or double space to the last (the text part,
    # a few KB, not the whole 40 KB body; it cost ~250 µs a message). A run of white space
    # never crosses a line end, so cutting at line ends changes nothing.
    found = [i for i in (body.find(b"\t"), body.find(b"  ")) if i >= 0]
    if found:
        start = body.rfind(b"\r\n", 0, min(found)) + 1  # the start of that line (0 if none)
        last = max(body.rfind(b"\t"), body.rfind(b"  "))
        end = body.find(b"\r\n", last)
        end = len(body) if end < 0 else end
        body = body[:start] + _WSP_TO_FIX.sub(b" ", body[start:end]) + body[end:]
    body = body.replace(b" \r\n", b"\r\n")
    body = body.rstrip(b"\r\n")
    return body + b"\r\n" if body else b""


def _relaxed_field(name: bytes, value: bytes) -> bytes:
    """RFC 6376 §3.4.2: lowercase name, unfolded value, WSP runs as one space, trimmed."""
    value = _WSP.sub(b" ", value.replace(b"\r\n", b"")).strip(b" \t")
    return name.strip(b" \t").lower() + b":" + value + b"\r\n"


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """(lowercase name, canonical line) for each header field, in message order."""
    raw: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and raw:
            raw[-1] += b"\r\n" + line
        else:
            raw.append(line)
    out = []
    for item in raw:
        name, _, value = item.partition(b":")
        out.append((name.strip(b" \t").lower(), _relaxed_field(name, value)))
    return out


def _select(fields: list[tuple[bytes, bytes]], names: tuple[bytes, ...]) -> list[bytes]:
    """Canonical lines to hash for h=, each name taking the last unused instance (§5.4.2)."""
    used: set[int] = set()
    chosen = []
    for name in names:
        for index in range(len(fields) - 1, -1, -1):
            if index not in used and fields[index][0] == name:
                used.add(index)
                chosen.append(fields[index][1])
                break
    return chosen


def _fold_names(names: tuple[bytes, ...]) -> bytes:
    """The h= list folded after a colon whenever a line would pass about 70 characters."""
    lines, line = [], b""
    for name in names:
        piece = name if not line else b":" + name
        if line and len(line) + len(piece) > 60:
            lines.append(line + b":")
            line = name
        else:
            line += piece
    lines.append(line)
    return b"\r\n ".join(lines)


def dns_record(signer: DkimSigner) -> tuple[str, str]:
    """(name, TXT value) the operator publishes: `selector._domainkey.domain`, `v=DKIM1; ...`."""
    import base64

    key = parse_pem_private_key(signer.private_key)
    public = _public_key_der(key["modulus"], key["publicExponent"])
    name = f"{signer.selector.decode()}._domainkey.{signer.domain.decode()}"
    return name, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"


def _public_key_der(modulus: int, exponent: int) -> bytes:
    """SubjectPublicKeyInfo DER for an RSA key (what the p= tag carries)."""
    def length(n: int) -> bytes:
        if n < 0x80:
            return bytes([n])
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return bytes([0x80 | len(raw)]) + raw

    def tlv(tag: int, body: bytes) -> bytes:
        return bytes([tag]) + length(len(body)) + body

    def integer(n: int) -> bytes:
        raw = n.to_bytes(n.bit_length() // 8 + 1, "big")
        return tlv(0x02, raw)

    rsa_key = tlv(0x30, integer(modulus) + integer(exponent))
    algorithm = tlv(0x30, bytes.fromhex("06092a864886f70d010101") + b"\x05\x00")
    return tlv(0x30, algorithm + tlv(0x03, b"\x00" + rsa_key))
