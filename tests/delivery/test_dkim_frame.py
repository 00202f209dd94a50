"""DKIM signing from a message's parts (dkim.Frame): what the builder already knows is not
parsed again, and every signed message still verifies with dkimpy, hostile ones included."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import dkim as dkimpy
import pytest

from newsletter import compose
from newsletter.delivery.dkim import DkimSigner, load_dkim
from newsletter.delivery.message import MessageBuilder, Recipient
from newsletter.tokens import Signer
from tests.conftest import require_module
from tests.delivery.test_bodies import ALPHABET
from tests.delivery.test_message_dkim import SECRET, dkim_settings, dns_for

ROOT = Path(__file__).resolve().parents[2]
LONG = "Coalición réfugiés « solidarité » — Amélie Ñandú " * 4  # folds as encoded words
TEXTS = [
    "Bonjour {name},\n\ntrailing spaces   \ntabs\tinside\t\tand  double  spaces\n \t\n"
    "Se désabonner : {unsubscribe_url}\n\n\n\n",  # empty lines at the end of the text part
    "one line of " + "x" * 300,  # one long line without a line end
    "{name}  " + "lorem ipsum " * 40 + "\n" + "\t" * 3 + "\n" + "y" * 200 + "\n",
    "",
    "\n\n\n",
]


@pytest.fixture
def whole_message_signing_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves the frame signed: signing the whole message (the fallback) raises."""
    def refuse(self: DkimSigner, message: bytes) -> bytes:
        raise AssertionError("signed from the whole message, not from its parts")
    monkeypatch.setattr(DkimSigner, "sign", refuse)


def signer_for(tmp_path: Path, key_file: Path) -> Any:
    require_module("cryptography")
    settings = dkim_settings(tmp_path / "ws", str(key_file))
    signer = load_dkim(settings)
    assert signer is not None and signer.engine == "openssl"
    return settings, signer


def body_hash(header: bytes) -> bytes:
    return re.search(rb"bh=([^;]+);", re.sub(rb"\s+", b"", header)).group(1)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize(("name", "subject"), [("Amélie", "Nouvelles"), (LONG, LONG),
                                                ("  spaced \t out  ", "Subject\twith  tabs ")])
def test_hostile_messages_are_signed_from_their_parts_and_verify(
        tmp_path: Path, key_file: Path, fake_edition: Any, whole_message_signing_fails: None,
        text: str, name: str, subject: str) -> None:
    settings, signer = signer_for(tmp_path, key_file)
    builder = MessageBuilder(settings=settings, edition=fake_edition(text=text, subject=subject),
                             issue_slug="i1", list_id=3, list_slug="news", list_name=LONG,
                             signer=Signer(SECRET), dkim=signer)
    _, data = builder.build(Recipient(9, 4, "amelie@example.net", name, {}))
    assert dkimpy.verify(data, dnsfunc=dns_for(signer))
    assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")  # no bare CR or LF
    if name == LONG:  # the To field is folded
        assert re.search(rb"\r\nTo: [^\r]*\r\n[ \t]", data.split(b"\r\n\r\n", 1)[0])


@pytest.mark.parametrize("seed", range(3))
def test_random_texts_are_signed_from_their_parts_and_verify(
        tmp_path: Path, key_file: Path, fake_edition: Any, whole_message_signing_fails: None,
        seed: int) -> None:
    settings, signer = signer_for(tmp_path, key_file)
    rnd = random.Random(seed)
    for _ in range(10):
        text = "".join(rnd.choice(ALPHABET) for _ in range(rnd.choice([0, 3, 40, 400])))
        builder = MessageBuilder(settings=settings, edition=fake_edition(text=text),
                                 issue_slug="i1", list_id=3, list_slug="news", list_name="News",
                                 signer=Signer(SECRET), dkim=signer)
        _, data = builder.build(Recipient(9, 4, "a@example.net", rnd.choice(ALPHABET), {}))
        assert dkimpy.verify(data, dnsfunc=dns_for(signer)), text


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_the_example_issue_is_signed_from_its_parts_and_verifies(
        tmp_path: Path, key_file: Path, whole_message_signing_fails: None, lang: str) -> None:
    settings, signer = signer_for(tmp_path, key_file)
    edition = compose.compile_issue(compose.load_issue(ROOT, "2026-11-coalition-update"), lang,
                                    settings)
    builder = MessageBuilder(settings=settings, edition=edition, issue_slug="i1", list_id=2,
                             list_slug="news", list_name="News", signer=Signer(SECRET),
                             dkim=signer)
    for number, name in enumerate(["María José", "", "a  b\tc " * 20]):
        _, data = builder.build(Recipient(number, number, f"r{number}@example.net", name, {}))
        assert dkimpy.verify(data, dnsfunc=dns_for(signer))


HEAD = (b"From: News <news@example.org>\r\nSubject:  Folded\r\n \tover  two\r\n lines \r\n"
        b"MIME-Version: 1.0\r\nX-Other: not signed\r\nX-Other: twice\r\n\r\n")
PARTS = (b"--b\r\nContent-Type: text/plain\r\n\r\n", b"\r\n--b\r\nContent-Type: text/html\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\n", b"--b--\r\n")
OWN = (b"To: =?utf-8?q?Am=C3=A9lie?=\r\n <a@example.net>\r\n", b"Date:\tTue,  1 Dec 2026\r\n",
       b"Message-ID: <1.2@example.org>  \r\n")


@pytest.mark.parametrize(("own", "text", "html"), [
    (OWN, b"plain", b"QUJD\r\n"),
    (OWN, b"trailing \t \r\n\r\n\r\nx  y\t\tz\r\n\r\n", b"QUJD" * 19 + b"\r\nQUJD\r\n"),
    (OWN, b"", b""),
    (OWN[:1], b"\r\n", b"QUJD\r\n"),
    ((), b" leading space\r\n", b"QUJD\r\n"),
])
def test_a_frame_signs_what_dkimpy_verifies_with_dkimpys_body_hash(
        tmp_path: Path, key_file: Path, own: tuple[bytes, ...], text: bytes, html: bytes) -> None:
    _, signer = signer_for(tmp_path, key_file)
    frame = signer.frame(HEAD, PARTS)
    assert frame is not None
    message = b"".join((*own, HEAD, PARTS[0], text, PARTS[1], html, PARTS[2]))
    header = frame.sign(own, text, html)
    assert header is not None
    assert dkimpy.verify(header + message, dnsfunc=dns_for(signer))
    assert body_hash(header) == body_hash(signer.sign_with_dkimpy(message))


@pytest.mark.parametrize(("own", "text", "html"), [
    ((b"To: a@example.net\n",), b"x", b""),  # a bare LF ending a field
    ((b"To: a\r\nb@example.net\r\n",), b"x", b""),  # a CRLF not followed by a space: 2 fields
    ((b"To: a\r@example.net\r\n",), b"x", b""),  # a bare CR
    ((b"Subject: again\r\n",), b"x", b""),  # a signed field also in the shared head
    ((b"To: a@example.net\r\n", b"to: b@example.net\r\n"), b"x", b""),  # twice
    ((b" To: a@example.net\r\n",), b"x", b""),  # starts as a continuation line
    ((b"To a@example.net\r\n",), b"x", b""),  # no colon
    ((b"To : a@example.net\r\n",), b"x", b""),  # a space in the name
    (OWN, b"bare\nLF", b""),
    (OWN, b"bare\rCR", b""),
    (OWN, b"ends in CR\r", b""),
    (OWN, b"x", b"QUJD QUJD\r\n"),  # base64 as made here holds no space or tab
    (OWN, b"x", b"QUJD\tQUJD\r\n"),
])
def test_a_frame_refuses_what_it_cannot_prove_canonical(
        tmp_path: Path, key_file: Path, own: tuple[bytes, ...], text: bytes, html: bytes) -> None:
    _, signer = signer_for(tmp_path, key_file)
    frame = signer.frame(HEAD, PARTS)
    assert frame is not None
    assert frame.sign(own, text, html) is None


@pytest.mark.parametrize(("head", "parts"), [
    (HEAD.replace(b"MIME-Version", b"Subject"), PARTS),  # a signed field twice
    (HEAD[:-2], PARTS),  # no blank line ending the head
    (HEAD.replace(b"\r\nMIME", b"\nMIME"), PARTS),
    (HEAD, (PARTS[0] + b"x", PARTS[1], PARTS[2])),  # the opening does not end a line
    (HEAD, (PARTS[0], PARTS[1][2:], PARTS[2])),  # the middle does not end the text's line
    (HEAD, (PARTS[0], PARTS[1], PARTS[2] + b"\r\n")),  # an empty line ends the body
    (HEAD, (PARTS[0], PARTS[1], b"\r\n")),
    (HEAD, (PARTS[0] + b"x  y\r\n", PARTS[1], PARTS[2])),  # not canonical already
    (HEAD, (PARTS[0], PARTS[1], b"--b-- \r\n")),
])
def test_a_frame_is_refused_when_the_shared_parts_are_not_canonical(
        tmp_path: Path, key_file: Path, head: bytes, parts: tuple[bytes, bytes, bytes]) -> None:
    _, signer = signer_for(tmp_path, key_file)
    assert signer.frame(head, parts) is None


def test_the_builder_falls_back_to_the_whole_message_without_a_frame(
        tmp_path: Path, key_file: Path, fake_edition: Any, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    settings, signer = signer_for(tmp_path, key_file)
    monkeypatch.setattr(DkimSigner, "frame", lambda self, head, parts: None)
    builder = MessageBuilder(settings=settings, edition=fake_edition(text=TEXTS[0]),
                             issue_slug="i1", list_id=3, list_slug="news", list_name="News",
                             signer=Signer(SECRET), dkim=signer)
    _, data = builder.build(Recipient(9, 4, "amelie@example.net", LONG, {}))
    assert dkimpy.verify(data, dnsfunc=dns_for(signer))
