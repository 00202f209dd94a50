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

The message builder signs through a `Frame` instead: the fields and MIME frame that all of an
edition's messages share are canonicalized once, and per message only the recipient's own
fields and the text part are (the base64 HTML part is already canonical as encoded), so no pass
over the whole message is made besides SHA-256. What the frame cannot prove canonical is
signed from the whole message as above.

The RSA signature is most of a signed message's CPU, and `cryptography` holds the GIL while it
signs (measured with 50.0: a busy second thread cut signing from ~900 to ~265 a second, and the
process never used more than one core), so signing in a thread pool would not overlap it with
the event loop's SMTP work. A `send` run therefore has the signature made by signer processes
(signers.py): the sender canonicalizes and hashes, and only the 32-byte digest crosses a pipe.

Where a signed message's CPU goes (issue 16, 2026-12-03, perf samples of a 20,000-message send,
2 x 8, 25 KB messages, a loaded machine): per message, OpenSSL's RSA 285 µs (255-265 in a tight
loop: between signatures the send's other work evicts its caches, and the Python after a
signature runs slower too, a plain build 38 -> 41-64 µs); the frame about 40 µs in a loop of
builds (SHA-256 of the body 15, proving the text part canonical 11, the own fields 6, the
header 4); the rest as in the unsigned send (286 µs). The two workers' start-up (imports, the
editions, the key) added about 80 µs a message at 20,000, signed or not: a second process costs
its start, not its steady state, which was the same as one process's. Since then `send` starts
them before it plans (crew.Crew), so their start-up overlaps the planning and the first
enqueue, and they no longer import the compiler to read the stored editions (compose/edition.py:
0.16 -> 0.09 s of CPU, 181 -> 56 modules).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from newsletter.config import Settings
from newsletter.delivery.headers import AddressError, ascii_address
from newsletter.errors import NewsletterError

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
    # the DKIM-Signature field around its t= and bh= values, as sent and as hashed (_tags)
    tags: tuple[tuple[bytes, ...], tuple[bytes, ...]] = field(init=False, repr=False,
                                                              compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _tags(self.domain, self.selector, self.headers))

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
        body_hash = hashlib.sha256(_relaxed_body(body)).digest()
        return self.signature(_select(_fields(head), self.headers), body_hash)

    def signature(self, lines: Sequence[bytes], body_hash: bytes) -> bytes:
        """The DKIM-Signature header from the canonical lines of the signed fields (in h=
        order) and the SHA-256 of the canonical body, signed with OpenSSL's RSA."""
        sent, canonical = self.tags
        now = str(int(time.time())).encode("ascii")
        bh = base64.b64encode(body_hash)
        data = b"".join((*lines, canonical[0], now, canonical[1], bh, canonical[2]))
        signature = self.rsa_key.sign(hashlib.sha256(data).digest(), *pkcs1_sha256())
        folded = fold_signature(base64.b64encode(signature))
        return b"".join((sent[0], now, sent[1], bh, sent[2], folded, b"\r\n"))

    def frame(self, head: bytes, parts: tuple[bytes, bytes, bytes]) -> Frame | None:
        """A `Frame` for messages made of header fields, then `head` (the fields every message
        shares and the blank line), then the body `parts[0] + text + parts[1] + base64 +
        parts[2]`. None when dkimpy signs (no `cryptography`) or a part is not canonical."""
        if self.rsa_key is None:
            return None
        return Frame.make(self, head, parts)

    def sign_with_dkimpy(self, message: bytes) -> bytes:
        """The same signature computed entirely by dkimpy (the reference; slow RSA)."""
        import dkim  # type: ignore[import-untyped]  # see load_dkim: only when it signs

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
    rsa_key = _openssl_key(pem)
    bits = rsa_key.key_size if rsa_key is not None else _dkimpy_key_bits(pem, path)
    if bits < MIN_KEY_BITS:
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
                      private_key=pem, rsa_key=rsa_key)


def _dkimpy_key_bits(pem: bytes, path: object) -> int:
    """The key's size in bits as dkimpy reads it (when `cryptography` cannot); a DkimError
    when dkimpy cannot parse it either."""
    # dkimpy is imported only here and where it signs: importing it imports dnspython, which
    # cost every sender process about 0.2 s of CPU at start-up (1 s on a loaded machine).
    from dkim.crypto import UnparsableKeyError, parse_pem_private_key  # type: ignore[import-untyped]

    try:
        key = parse_pem_private_key(pem)
    except (UnparsableKeyError, ValueError, IndexError, TypeError):
        raise DkimError(f"[dkim] key_path: {path} is not a PEM RSA private key "
                        "(make one with: openssl genrsa -out dkim.pem 2048)") from None
    return int(key["modulus"].bit_length())


@lru_cache(maxsize=2)
def _openssl_key(pem: bytes) -> Any:
    """The key for OpenSSL signing, or None when `cryptography` is missing or disagrees; kept
    by PEM, as parsing and checking it costs ~40 ms (a spawned worker loads it ahead of its
    run, content.prepare)."""
    # Imported here, not with the module: every send process imports this module, and
    # `cryptography` cost each one 11-18 ms at start-up (57 ms from a cold disk cache) even
    # when nothing is signed.
    try:  # optional: OpenSSL's RSA is ~25x faster than dkimpy's pure-Python one
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:  # pragma: no cover - exercised when the extra is not installed
        return None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, rsa.RSAPrivateKey) else None


def fold_signature(encoded: bytes) -> bytes:
    """The base64 b= value in lines of 72 characters (signers.Pending puts the real one in)."""
    return b"\r\n ".join(encoded[i : i + 72] for i in range(0, len(encoded), 72))


@lru_cache(maxsize=1)
def pkcs1_sha256() -> tuple[Any, ...]:
    """The padding and hash arguments of `sign` for rsa-sha256 (RFC 6376 §3.3.1), made once."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, utils

    return padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())


_WSP = re.compile(rb"[ \t]+")
_FIELD_NAME = re.compile(rb"[!-9;-~]+")  # RFC 5322 §3.6.8: printable ASCII but the colon
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
    if b"\r\n" in value:
        value = value.replace(b"\r\n", b"")
    if b"\t" in value or b"  " in value:  # single spaces stay as they are
        value = _WSP.sub(b" ", value)
    return name.strip(b" \t").lower() + b":" + value.strip(b" \t") + b"\r\n"


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


@dataclass(frozen=True, slots=True)
class Frame:
    """What all the messages of one builder share, canonicalized once for signing.

    A message is its own header fields (To, Date, ...), then `head` (the fields every message
    shares and the blank line), then the body: `opening + text + middle + base64 + closing`,
    the MIME frame around a quoted-printable part and a base64 part. Per message, only the own
    fields and the text part are canonicalized; the SHA-256 of the body starts from a copy of
    the state after `opening`. The base64 part, as bodies.Base64Part makes it, holds base64
    characters in CRLF lines: relaxed canonicalization changes nothing there, and a message
    whose base64 part holds a space or a tab is not signed here. `sign` returns None for a
    message it cannot prove canonical: the caller signs the whole message then.
    """

    signer: DkimSigner
    shared: dict[bytes, bytes]  # lowercase name -> canonical line, for the signed shared fields
    opening: Any  # hashlib SHA-256 state after the opening
    middle: bytes  # parts[1] after its CRLF (that CRLF ends the text's last line)
    closing: bytes

    @classmethod
    def make(cls, signer: DkimSigner, head: bytes, parts: tuple[bytes, bytes, bytes]
             ) -> Frame | None:
        """The frame, or None when the shared pieces are not as `sign` needs them."""
        opening, middle, closing = parts
        if (not head.endswith(b"\r\n\r\n") or not _strict_crlf(head) or head[:1] in b" \t"
                or not middle.startswith(b"\r\n") or not opening.endswith(b"\r\n")
                or (b"\r\n" + closing).endswith(b"\r\n\r\n")):
            return None
        if any(_relaxed_lines(part) != part for part in (opening, middle[2:], closing)):
            return None
        fields = [(name, line) for name, line in _fields(head[:-4]) if name in signer.headers]
        shared = dict(fields)
        if len(shared) != len(fields):
            return None  # a signed field twice: `_select` picks the instances
        return cls(signer, shared, hashlib.sha256(opening), middle[2:], closing)

    def sign(self, fields: Sequence[bytes], text: bytes, base64: bytes) -> bytes | None:
        """The DKIM-Signature header for the message with these own fields (each a whole field
        with its CRLF), text part and base64 part; None when it cannot be proven canonical."""
        own = _own_fields(fields, self.shared)
        lines = _relaxed_lines(text + b"\r\n")  # with the CRLF before `middle`: whole lines
        if own is None or lines is None or b" " in base64 or b"\t" in base64:
            return None
        digest = self.opening.copy()
        for piece in (lines, self.middle, base64, self.closing):
            digest.update(piece)
        signed = [own.get(name) or self.shared.get(name) for name in self.signer.headers]
        return self.signer.signature([line for line in signed if line], digest.digest())


def _own_fields(fields: Sequence[bytes], shared: dict[bytes, bytes]) -> dict[bytes, bytes] | None:
    """Lowercase name -> canonical line of each field; None if one is not a single CRLF field
    or its name is given twice or is among the shared signed fields."""
    own: dict[bytes, bytes] = {}
    for raw in fields:
        name, colon, value = raw.partition(b":")
        key = name.lower()
        if (not colon or key in own or key in shared or not raw.endswith(b"\r\n")
                or not _FIELD_NAME.fullmatch(name)):
            return None
        value = value[:-2]
        if b"\r" in value or b"\n" in value:  # folded: To with a long name
            if not _one_field(value):
                return None
            value = value.replace(b"\r\n", b"")
        if b"\t" in value or b"  " in value:
            value = _WSP.sub(b" ", value)
        own[key] = key + b":" + value.strip(b" \t") + b"\r\n"  # as _relaxed_field makes it
    return own


def _one_field(inner: bytes) -> bool:
    """True when a field value (without its last CRLF) is one line or folded: every line end a
    CRLF followed by a space or tab."""
    return (inner.count(b"\r") == inner.count(b"\n") == inner.count(b"\r\n")
            == inner.count(b"\r\n ") + inner.count(b"\r\n\t"))


def _relaxed_lines(data: bytes) -> bytes | None:
    """Relaxed body canonicalization of whole CRLF lines in the middle of a body (empty lines
    kept); None when a line end is not CRLF or the last line has none."""
    if data and not data.endswith(b"\r\n"):
        return None
    if not data.count(b"\r") == data.count(b"\n") == data.count(b"\r\n"):
        return None
    if b"\t" in data or b"  " in data:
        data = _WSP_TO_FIX.sub(b" ", data)
    return data.replace(b" \r\n", b"\r\n") if b" \r\n" in data else data


def _tags(domain: bytes, selector: bytes, headers: tuple[bytes, ...]
          ) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """The three pieces of the DKIM-Signature field around t= and bh=: as sent (from the field
    name to "b=") and relaxed-canonicalized (what the signature covers), made once."""
    sent = (b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=" + domain + b"; s="
            + selector + b";\r\n t=", b"; h=" + _fold_names(headers) + b";\r\n bh=",
            b";\r\n b=")
    # No white space is next to the cuts (t= and bh= values are digits and base64), so each
    # piece canonicalizes on its own as the whole field would (RFC 6376 §3.4.2).
    name, _, first = sent[0].partition(b":")
    canonical = (_relaxed_field(name, first)[:-2],
                 *(_relaxed_field(b"x", piece)[2:-2] for piece in sent[1:]))
    return sent, canonical


@lru_cache(maxsize=16)
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
    if signer.rsa_key is not None:
        numbers = signer.rsa_key.public_key().public_numbers()
        public = _public_key_der(numbers.n, numbers.e)
    else:
        from dkim.crypto import parse_pem_private_key  # type: ignore[import-untyped]

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
