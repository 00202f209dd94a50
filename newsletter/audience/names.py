"""Display names: one rule for every way a name comes in (form, preferences page, CLI, import).

A name ends up in a `To:` header and on pages, so it must be one line: runs of whitespace (line
breaks and tabs too) become one space, and control characters and bidirectional overrides (which
can make a name display as something else) are dropped. Joiners stay: U+200C and U+200D are part
of how Persian, Arabic and other scripts spell names. A name longer than MAX_NAME characters is
refused, never cut: a cut name would be stored as something the person did not write.
"""

from __future__ import annotations

import unicodedata

from newsletter.errors import ValidationError

MAX_NAME = 200
# Embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069).
BIDI_CONTROLS = frozenset(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))


def clean_name(value: str | None) -> str:
    """The name as stored; ValidationError when it is longer than MAX_NAME characters."""
    name = " ".join((value or "").split())
    name = "".join(ch for ch in name
                   if ch not in BIDI_CONTROLS and unicodedata.category(ch) != "Cc")
    if len(name) > MAX_NAME:
        raise ValidationError(f"name: longer than {MAX_NAME} characters")
    return name
