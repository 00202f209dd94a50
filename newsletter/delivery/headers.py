"""The one header writer: every header field of every mail we send is written here.

Newsletters, test copies and system mails (confirmation, welcome, preferences link) all take
their header lines from these functions; nothing else formats a header. The message builder
formats a To header per recipient, thousands of times a second, so this is plain string work,
not `email.message.EmailMessage` (whose parser also decodes encoded words a person typed into
real CR/LF and then writes them out as new header lines: the hole this module closes).
The tests prove the result with the standard library's parser:

- every control character (CR and LF included) in a name or subject becomes a space before
  anything else happens, so no value can start a header of its own;
- non-ASCII text goes out as `=?utf-8?b?...?=` encoded words, each at most 75 characters;
  an address never does: a non-ASCII domain is written in its IDNA (punycode) form;
- text a person typed that looks like an encoded word (`=?utf-8?q?...?=`) is itself put
  inside one of our encoded words, so a reader decodes it once, back to those literal
  characters, never into the CR/LF or header it spells (RFC 2047 §5);
- values we generate ourselves (dates, message ids, URLs) must be printable ASCII, or
  `ascii_field` refuses them;
- lines are folded at 76 characters, far below the 998-octet limit of RFC 5322 §2.1.1.
"""

from __future__ import annotations

import binascii
import re

import idna

from newsletter.errors import NewsletterError

MAX_LINE = 76
EW_OVERHEAD = len("=?utf-8?b??=")
WORD_BYTES = (MAX_LINE - 1 - EW_OVERHEAD) // 4 * 3  # 45: a continuation line " =?...?=" fits
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII except ":"
_PRINTABLE = re.compile(r"[ -~]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]+")
_SPACES = re.compile(r"\s+")
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
_PHRASE_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


class AddressError(NewsletterError):
    """An address cannot be written into a message header or SMTP envelope."""


def clean_text(value: str) -> str:
    """Collapse control characters and runs of whitespace into single spaces."""
    value = value or ""
    # Printable text has no control character and no whitespace but " " (what the regular
    # expressions replace is all "Other" or "Separator"): then only "  " or an outer " "
    # could change, and these checks cost a tenth of the two substitutions (the sender
    # cleans each recipient's name twice).
    if value.isprintable() and "  " not in value and value[:1] != " " and value[-1:] != " ":
        return value
    return _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()


def ascii_address(address: str) -> str:
    """The address as it goes on the wire: punycode domain; raise on anything unsafe.

    A non-ASCII local part would need SMTPUTF8, which a bulk sender cannot count on.
    """
    address = (address or "").strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise AddressError(f"not an email address: {address!r}")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise AddressError(f"{address!r}: domain is not a valid IDN ({exc})") from None
    if not _LOCAL_PART.fullmatch(local):
        raise AddressError(f"{address!r}: the part before @ cannot be sent without SMTPUTF8 "
                           "or contains characters not allowed in an address")
    if not _DOMAIN.fullmatch(domain):
        raise AddressError(f"{address!r}: invalid domain")
    return f"{local}@{domain}"


def encoded_words(text: str, header: str = "") -> list[str]:
    """RFC 2047 base64 encoded words for `text`, split between characters, never inside one.

    The first word is sized to fit on the `Header: ` line, the others on their own folded
    lines, so every line stays within 76 characters. A name that fits one word (45 UTF-8
    bytes) is also read back right by Python's address parser, which wrongly adds a space
    between adjacent encoded words in a display name; other readers join them as RFC 2047 says.
    """
    budget = max(6, (MAX_LINE - len(header) - 2 - EW_OVERHEAD) // 4 * 3)
    if len(text.encode("utf-8")) <= budget:  # the usual name: one word, no per-char loop
        return [_word(text)]
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in text:
        n = len(char.encode("utf-8"))
        if size + n > budget and chunk:
            words.append(_word("".join(chunk)))
            chunk, size, budget = [], 0, WORD_BYTES
        chunk.append(char)
        size += n
    if chunk:
        words.append(_word("".join(chunk)))
    return words


def _word(text: str) -> str:
    encoded = binascii.b2a_base64(text.encode("utf-8"), newline=False).decode("ascii")
    return f"=?utf-8?b?{encoded}?="


def fold(name: str, tokens: list[str]) -> bytes:
    """`Name: tok tok ...` with CRLF + space between tokens wherever a line would pass 76."""
    lines: list[str] = []
    line = f"{name}:"
    for token in tokens:
        if len(line) + 1 + len(token) > MAX_LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line = f"{line} {token}"
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _needs_encoding(text: str) -> bool:
    # "=?" in plain text would be mistaken for an encoded word by readers.
    return not text.isascii() or "=?" in text


def text_tokens(value: str, header: str = "") -> list[str]:
    """Tokens of an unstructured value (Subject): plain words, or encoded words if needed."""
    text = clean_text(value)
    if not text:
        return []
    words = text.split(" ")
    if _needs_encoding(text) or any(len(w) > MAX_LINE - 20 for w in words):
        return encoded_words(text, header)
    return words


def phrase_tokens(name: str, header: str = "") -> list[str]:
    """Tokens of a display name: atoms, one quoted string, or atoms and encoded words."""
    text = clean_text(name)
    if not text:
        return []
    if _needs_encoding(text) or len(text) > MAX_LINE - 20:
        return _mixed_phrase(text, header)
    if _PHRASE_ATOMS.fullmatch(text):
        return text.split(" ")
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return [f'"{quoted}"']


def _plain_word(word: str) -> bool:
    return bool(_ATEXT.fullmatch(word)) and "=?" not in word and len(word) <= MAX_LINE - 20


def _mixed_phrase(text: str, header: str) -> list[str]:
    """Plain atoms as they are, every run of other words as encoded words.

    The space between an encoded word and an atom is kept by every reader, so a long name
    splits there rather than between two encoded words (where RFC 2047 readers drop the
    space and Python's address parser adds one).
    """
    tokens: list[str] = []
    run: list[str] = []
    for word in text.split(" "):
        if not _plain_word(word):
            run.append(word)
            continue
        if run:
            tokens += encoded_words(" ".join(run), "" if tokens else header)
            run = []
        tokens.append(word)
    if run:
        tokens += encoded_words(" ".join(run), "" if tokens else header)
    return tokens


def unstructured(name: str, value: str) -> bytes:
    """A folded unstructured header (Subject, Content-Language...)."""
    return fold(name, text_tokens(value, name))


def mailbox(name: str, display_name: str, address: str) -> bytes:
    """A folded address header (From, To, Reply-To): `phrase <addr>` or just `addr`."""
    return wire_mailbox(name, display_name, ascii_address(address))


def wire_mailbox(name: str, display_name: str, addr: str) -> bytes:
    """`mailbox` for an address already in wire form (ascii_address): the sender has it for
    RCPT TO anyway, and checking an address twice per message is measurable."""
    phrase = phrase_tokens(display_name, name)
    return fold(name, [*phrase, f"<{addr}>"] if phrase else [addr])


def ascii_field(name: str, value: str) -> bytes:
    """A header whose value we generate (Date, Message-ID, a URL): printable ASCII only.

    A value from a person never comes here; anything else is a bug, refused loudly.
    """
    if not _FIELD_NAME.fullmatch(name) or not _PRINTABLE.fullmatch(value):
        raise ValueError(f"refusing to write header {name!r}: {value!r}")
    return fold(name, value.split(" "))


def is_atom(text: str) -> bool:
    """True when `text` can stand unquoted in a structured header (slugs, domains parts)."""
    return bool(_ATEXT.fullmatch(text))
