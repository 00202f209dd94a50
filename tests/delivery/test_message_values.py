"""A personalized message carries exactly the straightforward render of the edition for that
recipient, whatever the value, and arrives at the relay byte for byte as built: the builder
encodes the edition's text once and only the recipient's values per message, and tells SMTP
when no line starts with "." (DotFree), so DATA sends it without looking."""

from __future__ import annotations

import asyncio
import email.policy
import html
import re
from email.parser import BytesParser
from typing import Any

import pytest

from newsletter.delivery.bodies import DotFree
from newsletter.delivery.headers import clean_text
from newsletter.delivery.message import MessageBuilder, Recipient
from newsletter.delivery.relay import Relay
from newsletter.delivery.smtp import send_each
from newsletter.tokens import Signer

PARSER = BytesParser(policy=email.policy.default)
PARAGRAPH = "The coalition met in Bangkok. Read the statement. Sign it before the deadline. " * 3
# The name opens a line of the text (where a "." would need dot-stuffing) and sits inside an
# HTML attribute and element (where it needs escaping), between long literal chunks.
TEXT = (f"Hello\n{{name}}, welcome.\n\n{PARAGRAPH}\n.literal line starting with a dot\n\n"
        f"{PARAGRAPH}\n{{name}}\n")
TEXT_NO_DOT = TEXT.replace("\n.literal", "\nliteral")
HTML = (f'<html lang="en"><body><p title="{{name}}">Hello {{name}},</p><p>{PARAGRAPH}</p>'
        f"<p>{PARAGRAPH}</p><p>{{name}}</p></body></html>")
HOSTILE = [
    "Reader",
    "Zoé <b>\"Ünïcødé\" & 'co'</b>",
    ".hidden",
    ".",
    "..",
    "=?utf-8?q?=0D=0ABcc:_x@evil.example?=",
    "😀" * 30 + "ß" * 400,
    "x" * 3000,
    "tab\tand\r\nnew line",
]


class SplitEdition:
    """An edition whose pieces are the composer's shape: literal chunks at even indexes, the
    recipient's (escaped for HTML) name at odd ones."""

    language, subject, slug, date = "en", "News", "2026-11-news", "2026-11-20"

    def __init__(self, text: str) -> None:
        self.text = text

    def pieces(self, slots: Any) -> tuple[list[str], list[str]]:
        html_parts, text_parts = HTML.split("{name}"), self.text.split("{name}")
        return (_between(html_parts, html.escape(slots.name)),
                _between(text_parts, slots.name))


def _between(literals: list[str], value: str) -> list[str]:
    out = [literals[0]]
    for literal in literals[1:]:
        out += [value, literal]
    return out


def _builder(settings: Any, text: str) -> MessageBuilder:
    return MessageBuilder(settings=settings, edition=SplitEdition(text), issue_slug="2026-11-news",
                          list_id=7, list_slug="news", list_name="News",
                          signer=Signer("test-secret-key-0123456789"))


def _line_starts_with_dot(data: bytes) -> bool:
    return re.search(rb"(?:^|\n)\.", data) is not None


@pytest.mark.parametrize("text", [TEXT, TEXT_NO_DOT], ids=["dot-literal", "no-dot-literal"])
def test_each_part_decodes_to_the_straightforward_render_for_hostile_values(
        message_settings: Any, text: str) -> None:
    builder = _builder(message_settings, text)
    for n, name in enumerate(HOSTILE * 2):  # twice: the second time from the encoders' caches
        _sender, data = builder.build(Recipient(n, n, f"r{n}@example.net", name, {}))
        value = clean_text(name)
        text_part, html_part = PARSER.parsebytes(data).iter_parts()
        assert text_part.get_content().replace("\r\n", "\n") == text.replace("{name}", value)
        assert html_part.get_content().replace("\r\n", "\n") == HTML.replace(
            "{name}", html.escape(value))
        assert all(len(line) <= 76 for line in data.split(b"\r\n\r\n", 1)[1].split(b"\r\n"))
        # SMTP skips its scan only for a message that has no line starting with "."
        assert (type(data) is DotFree) == (not _line_starts_with_dot(data)), name


def test_messages_without_a_leading_dot_go_out_unscanned(message_settings: Any) -> None:
    builder = _builder(message_settings, TEXT_NO_DOT)
    _sender, data = builder.build(Recipient(1, 1, "r1@example.net", "Reader", {}))
    assert type(data) is DotFree


@pytest.mark.parametrize("text", [TEXT, TEXT_NO_DOT], ids=["dot-literal", "no-dot-literal"])
def test_hostile_values_arrive_at_the_relay_as_built(message_settings: Any, smtp_server: Any,
                                                       both_pipelinings: bool, text: str) -> None:
    builder = _builder(message_settings, text)
    built = [builder.build(Recipient(n, n, f"r{n}@example.net", name, {}))
             for n, name in enumerate(HOSTILE)]
    relay = Relay("127.0.0.1", smtp_server.port, "none", "", "", 5.0)
    results = asyncio.run(send_each(relay, [(sender, f"r{n}@example.net", data)
                                            for n, (sender, data) in enumerate(built)]))
    assert [r.status for r in results] == ["sent"] * len(HOSTILE)
    for (_sender, _rcpts, received), (_s, data) in zip(smtp_server.messages, built, strict=True):
        assert received.replace(b"\r\n", b"\n").endswith(data.replace(b"\r\n", b"\n"))
