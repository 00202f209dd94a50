"""Display names: one rule for every way a name comes in (form, preferences page, CLI, import).

A name ends up in a `To:` header and on pages, so it must be one line: runs of whitespace (line
breaks and tabs too) become one space, and control characters and invisible format characters
(bidirectional overrides, which can make a name display as something else, zero-width spaces)
are dropped. Joiners stay: U+200C and U+200D are part of how Persian, Arabic and other scripts
spell names. A name longer than MAX_NAME characters is refused, never cut: a cut name would be
stored as something the person did not write.
"""

from __future__ import annotations

import unicodedata

from newsletter.errors import ValidationError

MAX_NAME = 200
FORMAT = ("Cc", "Cf")  # control and invisible format characters (bidi overrides, U+200B ...)
JOINERS = frozenset("\u200c\u200d")  # zero-width non-joiner and joiner: part of spellings


def clean_name(value: str | None) -> str:
    """The name as stored; ValidationError when it is longer than MAX_NAME characters."""
    # Whitespace first (a line break becomes a space), then what is left of the invisible.
    name = " ".join((value or "").split())
    if not name.isprintable():  # only then can there be a control or format character
        name = "".join(ch for ch in name
                       if ch in JOINERS or unicodedata.category(ch) not in FORMAT)
        name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise ValidationError(f"name: longer than {MAX_NAME} characters")
    return name
