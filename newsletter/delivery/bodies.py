"""Transfer encodings of a message's two parts, the edition's constant text encoded only once.

text/plain goes as quoted-printable (readable, and spam filters frown on base64 text), text/html
as base64 (minified HTML has long lines and base64 is a C call, no per-character work). Both
keep every line within 76 characters and end lines with CRLF (RFC 2045 §6.7, §6.8).
`quoted_printable` and `base64_body` encode a whole text.

Per recipient, almost all of an edition is the same. The composer hands a part as pieces:
literal chunks at even indexes, the same for every recipient, and the recipient's values at odd
indexes between them (CompiledEdition.pieces). `Base64Part` and `QuotedPrintablePart` return
exactly the bytes of encoding the joined text (tests/delivery/test_bodies.py compares them),
but encode a literal chunk once per place it can take in the output:

- base64 turns groups of 3 bytes into 4 characters, 19 groups to a line: a chunk's encoding
  depends only on how many bytes of a group are pending before it (0-2) and on the column it
  starts at, so a chunk has at most 57 encodings, each made the first time it is needed;
- quoted-printable encodes each line on its own (binascii.b2a_qp keeps no state across a
  line end): the complete lines inside a literal chunk are encoded once, and only the lines
  holding a value are encoded per recipient.

A text holding a CR is encoded whole: CRLF normalisation could join a CR ending one piece
with a LF starting the next.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence

B64_LINE = 76
CRLF = b"\r\n"
CACHED = 64  # literal chunks this long or longer are encoded once; shorter ones per message
CACHE_LIMIT = 4096  # entries: far more than an edition needs; a safety net, not a tuning knob


class DotFree(bytes):
    """Message bytes that end with CRLF and have no line starting with ".", so DATA sends them
    as they are. The message builder knows this of its own output part by part (base64 has no
    ".", the edition's text was checked once): `dot_stuff` then skips its scan of the whole
    message, which costs more than building it where the text has many sentences."""

    __slots__ = ()


def crlf(text: str) -> bytes:
    """UTF-8 bytes with every line ending as CRLF, as SMTP and the MIME encoders expect."""
    data = text.encode("utf-8")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data.replace(b"\n", b"\r\n")


def quoted_printable(text: str) -> bytes:
    """Quoted-printable body, lines at most 76 characters, CRLF hard line breaks."""
    data = crlf(text)
    if b"\n" not in data:  # b2a_qp ends soft line breaks as the first line end: CRLF, not LF
        return binascii.b2a_qp(CRLF + data, quotetabs=False, istext=True, header=False)[2:]
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)


def base64_body(text: str) -> bytes:
    """Base64 body in 76-character lines (RFC 2045 §6.8), ending with CRLF."""
    out: list[bytes] = []
    if _lines(out, binascii.b2a_base64(crlf(text), newline=False), 0):
        out.append(CRLF)
    return b"".join(out)


def _lines(out: list[bytes], encoded: bytes, column: int) -> int:
    """Append base64 characters to `out`, breaking lines at 76; the column it ends at."""
    room = B64_LINE - column
    size = len(encoded)
    if size < room:
        if size:
            out.append(encoded)
        return column + size
    out += (encoded[:room], CRLF)
    end = size - (size - room) % B64_LINE
    for start in range(room, end, B64_LINE):
        out += (encoded[start:start + B64_LINE], CRLF)
    if end < size:
        out.append(encoded[end:])
    return size - end


class Base64Part:
    """The base64 text/html body from an edition's pieces, its literal chunks encoded once."""

    def __init__(self) -> None:
        self._bytes: dict[str, bytes | None] = {}  # literal chunk -> its bytes (None: a CR)
        self._runs: dict[tuple[str, int, int], tuple[bytes, int, bytes]] = {}

    def encode(self, pieces: Sequence[str]) -> list[bytes]:
        """The encoded body, in chunks: `base64_body("".join(pieces))` once joined."""
        out: list[bytes] = []
        column = 0
        pending = b""  # the last 0-2 bytes, not a whole group yet
        known, runs = self._bytes, self._runs
        for index, piece in enumerate(pieces):
            if index % 2 == 0 and len(piece) >= CACHED:
                literal = known.get(piece) or self._literal(piece)  # None: it holds a CR
                if literal is None:
                    return [base64_body("".join(pieces))]
                head = -len(pending) % 3  # bytes of this chunk that complete the group
                if pending:
                    column = _lines(out, binascii.b2a_base64(pending + literal[:head],
                                                             newline=False), column)
                text, column, pending = (runs.get((piece, head, column))
                                         or self._run(piece, head, column))
                out.append(text)
                continue
            if "\r" in piece:
                return [base64_body("".join(pieces))]
            data = pending + piece.encode("utf-8").replace(b"\n", b"\r\n")
            whole = len(data)
            whole -= whole % 3
            column = _lines(out, binascii.b2a_base64(data[:whole], newline=False), column)
            pending = data[whole:]
        if pending:
            column = _lines(out, binascii.b2a_base64(pending, newline=False), column)
        if column:
            out.append(CRLF)
        return out

    def _literal(self, piece: str) -> bytes | None:
        if piece not in self._bytes:
            if len(self._bytes) > CACHE_LIMIT:
                self._bytes.clear()
            self._bytes[piece] = None if "\r" in piece else crlf(piece)
        return self._bytes[piece]

    def _run(self, piece: str, head: int, column: int) -> tuple[bytes, int, bytes]:
        """A literal chunk's encoding from byte `head` on, starting at `column`: the text,
        the column it ends at and the 0-2 bytes left for the next group."""
        data = self._bytes[piece]
        assert data is not None
        whole = len(data) - (len(data) - head) % 3
        out: list[bytes] = []
        end = _lines(out, binascii.b2a_base64(data[head:whole], newline=False), column)
        if len(self._runs) > CACHE_LIMIT:
            self._runs.clear()
        run = self._runs[piece, head, column] = (b"".join(out), end, data[whole:])
        return run


class QuotedPrintablePart:
    """The quoted-printable text/plain body from an edition's pieces, only the lines that hold
    a recipient's value encoded per message."""

    def __init__(self) -> None:
        # literal chunk -> (up to its first line end, its complete lines encoded, whether one
        # of those starts with ".", the rest); None: it holds no line end (or a CR) and goes
        # into the line around it
        self._lines: dict[str, tuple[str, bytes, bool, str] | None] = {}

    def encode(self, pieces: Sequence[str]) -> list[bytes]:
        """The encoded body, in chunks: `quoted_printable("".join(pieces))` once joined."""
        return self.encode_checked(pieces)[0]

    def encode_checked(self, pieces: Sequence[str]) -> tuple[list[bytes], bool]:
        """`encode`, and whether a line of the body starts with "." (SMTP must dot-stuff it):
        the edition's complete lines were looked at once, only the lines around the
        recipient's values are looked at per message."""
        out: list[bytes] = []
        dot = False
        line: list[str] = []  # the pieces of the line being gathered
        known = self._lines
        for index, piece in enumerate(pieces):
            split = (known.get(piece) or self._split(piece)
                     if index % 2 == 0 and len(piece) >= CACHED else None)
            if split is None:
                if "\r" in piece:
                    whole = quoted_printable("".join(pieces))
                    return [whole], dot_line(whole)
                line.append(piece)
                continue
            head, middle, middle_dot, tail = split
            line.append(head)
            encoded = quoted_printable("".join(line))
            out += (encoded, middle)
            dot = dot or middle_dot or dot_line(encoded)
            line = [tail]
        last = "".join(line)
        if last:  # after a CRLF when out has chunks: encoded as in a text with CRLF line ends
            encoded = quoted_printable("\n" + last)[2:] if out else quoted_printable(last)
            out.append(encoded)
            dot = dot or dot_line(encoded)
        return out, dot

    def _split(self, piece: str) -> tuple[str, bytes, bool, str] | None:
        if piece not in self._lines:
            if len(self._lines) > CACHE_LIMIT:
                self._lines.clear()
            first, last = piece.find("\n"), piece.rfind("\n")
            middle = quoted_printable(piece[first + 1:last + 1])
            self._lines[piece] = None if first < 0 or "\r" in piece else (
                piece[:first + 1], middle, dot_line(middle), piece[last + 1:])
        return self._lines[piece]


def dot_line(data: bytes) -> bool:
    """Whether a line of `data` (which starts at a line start) starts with "."."""
    return data[:1] == b"." or b"\n." in data
