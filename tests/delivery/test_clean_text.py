"""clean_text: its shortcut for printable text gives what the two substitutions give."""

from __future__ import annotations

import re

import pytest

from newsletter.delivery.headers import clean_text

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]+")
SPACES = re.compile(r"\s+")


def substituted(value: str) -> str:
    """clean_text as it was: control characters, then runs of whitespace, made one space."""
    return SPACES.sub(" ", CONTROL.sub(" ", value)).strip()


@pytest.mark.parametrize("value", ["", "Reader 1", "Zoë Ünal", "a  b", " a", "a ", " ",
                                   "a\tb", "a\u00a0b", "a\u2028b", "a\ufeffb", "a\x85b",
                                   "\u3000a\u3000", "李 小龍", "a \u200b b"])
def test_names_come_out_as_the_substitutions_make_them(value: str) -> None:
    assert clean_text(value) == substituted(value)


def test_every_character_alone_inside_or_at_the_ends_comes_out_the_same() -> None:
    chars = [chr(c) for c in (*range(0x3100), *range(0xfe00, 0x10000)) if not 0xd800 <= c < 0xe000]
    for c in chars:
        for value in (c, f"a{c}b", f"{c}ab", f"ab{c}", f"a {c} b", c * 2):
            assert clean_text(value) == substituted(value), repr(value)
