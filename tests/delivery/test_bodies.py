"""Bodies encoded from an edition's pieces are byte for byte the encoding of the whole text."""

from __future__ import annotations

import binascii
import email.policy
import random
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from newsletter import compose
from newsletter.compose import Slots
from newsletter.config import load_settings
from newsletter.delivery.bodies import (
    Base64Part,
    QuotedPrintablePart,
    base64_body,
    quoted_printable,
)
from newsletter.delivery.message import MessageBuilder, Recipient
from newsletter.links import preferences_url, unsubscribe_url
from newsletter.tokens import Signer

ROOT = Path(__file__).resolve().parents[2]
SLUG = "2026-11-coalition-update"
SECRET = "test-secret-key-0123456789"
# What makes the encoders' edge cases: line ends (LF, CR, CRLF), spaces before a line end,
# a lone "." line, "=", multi-byte characters, and lines longer than 76 characters.
ALPHABET = ["a", "b", " ", "\t", "\n", "\n", ".", "=", "é", "€", "😀", "x" * 90, "  \n", ".\n",
            "\r", "\r\n"]


def text(rnd: random.Random, length: int, cr: bool) -> str:
    letters = ALPHABET if cr else ALPHABET[:-2]
    return "".join(rnd.choice(letters) for _ in range(length))


@pytest.mark.parametrize("seed", range(4))
def test_random_pieces_encode_to_the_bytes_of_the_joined_text(seed: int) -> None:
    rnd = random.Random(seed)
    for _edition in range(300):
        b64, qp = Base64Part(), QuotedPrintablePart()  # one pair per edition, as the builder
        literals = [text(rnd, rnd.choice([0, 1, 5, 63, 64, 65, 200, 500]), rnd.random() < 0.05)
                    for _ in range(rnd.randint(1, 5))]
        for _recipient in range(4):
            pieces = [literals[0]]
            for literal in literals[1:]:
                pieces += [text(rnd, rnd.choice([0, 1, 2, 3, 10, 80]), rnd.random() < 0.05),
                           literal]
            whole = "".join(pieces)
            assert b"".join(b64.encode(pieces)) == base64_body(whole), pieces
            assert b"".join(qp.encode(pieces)) == quoted_printable(whole), pieces


def test_base64_lines_are_76_characters_and_end_with_crlf() -> None:
    body = base64_body("é" * 100)
    lines = body.split(b"\r\n")
    assert lines[-1] == b"" and all(len(line) == 76 for line in lines[:-2])
    assert 0 < len(lines[-2]) <= 76
    assert base64_body("") == b""


@pytest.fixture(scope="module")
def example() -> tuple[Any, Any]:
    settings = load_settings(Path("/nonexistent-ws"), environ={}, overrides={
        "newsletter": {"secret_key": SECRET, "base_url": "https://news.example.org",
                       "from_address": "news@example.org"}})
    return settings, compose.compile_issue(compose.load_issue(ROOT, SLUG), "fr", settings)


def test_every_recipient_gets_the_whole_texts_encoding_whatever_the_name_length(
        example: tuple[Any, Any]) -> None:
    """Names of every length move the edition's text to every base64 column and group offset:
    each message carries exactly the bytes of encoding that recipient's filled text whole."""
    settings, edition = example
    signer = Signer(SECRET)
    builder = MessageBuilder(settings=settings, edition=edition, issue_slug=SLUG, list_id=2,
                             list_slug="news", list_name="News", signer=signer)
    parser = BytesParser(policy=email.policy.default)
    assert "\n" in edition.fill(Slots())[1]  # the text's line ends are in its literal chunks
    for n in range(120):
        name = ("Zoé" + "x" * n)[:n] if n % 3 else "😀" * (n // 3)
        _sender, data = builder.build(Recipient(n, 1000 + n, f"r{n}@example.net", name, {}))
        html, text = edition.fill(Slots(
            name=name, web_url=edition.web_url,
            unsubscribe_url=unsubscribe_url(settings.newsletter.base_url, signer, 1000 + n, 2),
            preferences_url=preferences_url(settings.newsletter.base_url, signer, 1000 + n, 2)))
        text_part, html_part = parser.parsebytes(data).iter_parts()
        assert text_part.get_content().replace("\r\n", "\n") == text
        assert html_part.get_content().replace("\r\n", "\n") == html
        # the parser drops each part's last CRLF (it belongs to the boundary line)
        assert b"\r\n\r\n" + quoted_printable(text) + b"\r\n--" in data
        assert b"\r\n\r\n" + base64_body(html) + b"--" in data


@pytest.mark.parametrize("line", ["x" * 200, "é" * 80, "a " * 60 + "b"])
def test_a_text_of_one_long_line_is_broken_with_crlf_soft_line_breaks(line: str) -> None:
    # b2a_qp ends a soft line break as the text's first line end, LF when there is none:
    # relays refuse a bare LF in a message (Postfix, Exchange).
    body = quoted_printable(line)
    assert body.count(b"\n") == body.count(b"\r\n") > 0
    assert all(len(part) <= 76 for part in body.split(b"\r\n"))
    assert binascii.a2b_qp(body).decode("utf-8") == line
