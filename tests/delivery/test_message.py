"""Every newsletter message follows STANDARDS.md: parsed back with Python's email parser."""

from __future__ import annotations

import email.policy
import re
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from newsletter.delivery.message import MessageBuilder, Recipient, smtp_address
from newsletter.errors import NewsletterError
from newsletter.tokens import Signer

PARSER = BytesParser(policy=email.policy.default)
SECRET = "test-secret-key-0123456789"


@pytest.fixture
def signer() -> Signer:
    return Signer(SECRET)


@pytest.fixture
def builder(message_settings: Any, fake_edition: Any, signer: Signer):
    def make(edition: Any = None, list_name: str = "Coalition News", **kw: Any) -> MessageBuilder:
        return MessageBuilder(
            settings=kw.pop("settings", message_settings), edition=edition or fake_edition(),
            issue_slug="2026-11-coalition-update", list_id=7, list_slug="news",
            list_name=list_name, signer=signer, **kw)
    return make


def recipient(n: int = 1, name: str = "Amélie Dupont", email: str = "amelie@example.net",
              **attributes: str) -> Recipient:
    return Recipient(delivery_id=1000 + n, subscriber_id=n, email=email, name=name,
                     attributes=attributes)


def parse(data: bytes) -> EmailMessage:
    return PARSER.parsebytes(data)  # type: ignore[return-value]


def header_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


def folded_lines(data: bytes) -> list[bytes]:
    """Header lines except List-Unsubscribe, whose URI must stay whole on one line."""
    return [line for line in header_block(data).split(b"\r\n")
            if not line.startswith(b"List-Unsubscribe:")]


def lf(text: str) -> str:
    """Text bodies travel with CRLF line breaks (canonical form); compare them with LF."""
    return text.replace("\r\n", "\n")


def test_message_has_every_standard_header(builder: Any) -> None:
    sender, data = builder().build(recipient())
    msg = parse(data)
    assert msg["From"].addresses[0].display_name == "Réseau Migrations & Co"
    assert msg["From"].addresses[0].addr_spec == "news@example.org"
    assert msg["To"].addresses[0].display_name == "Amélie Dupont"
    assert msg["To"].addresses[0].addr_spec == "amelie@example.net"
    assert msg["Reply-To"].addresses[0].addr_spec == "editors@example.org"
    assert msg["Subject"] == "Nouvelles de la coalition"
    assert parsedate_to_datetime(msg["Date"]).utcoffset().total_seconds() == 0
    assert re.fullmatch(r"<1001\.[0-9a-f]{12}@mail\.example\.org>", msg["Message-ID"])
    assert msg["MIME-Version"] == "1.0"
    assert msg["List-Id"] == "Coalition News <news.lists.example.org>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Feedback-ID"] == "2026-11-coalition-update:news:newsletter:coalition"
    assert msg["Content-Language"] == "fr"
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.defects == []
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe"):
        assert len(msg.get_all(name)) == 1, name


def test_message_id_defaults_to_the_from_domain_and_is_unique(builder: Any, tmp_path: Any) -> None:
    from newsletter.config import load_settings

    settings = load_settings(tmp_path / "bare", environ={}, overrides={"newsletter": {
        "secret_key": SECRET, "from_address": "info@coalition.example"}})
    b = builder(settings=settings)
    ids = {parse(b.build(recipient())[1])["Message-ID"] for _ in range(50)}
    assert len(ids) == 50
    assert all(i.endswith("@coalition.example>") for i in ids)


def test_list_unsubscribe_is_one_https_uri_whose_token_names_subscriber_and_list(
        builder: Any, signer: Signer) -> None:
    msg = parse(builder().build(recipient(n=42))[1])
    value = msg["List-Unsubscribe"]
    uris = re.findall(r"<([^>]*)>", value)
    assert len(uris) == 1 and uris[0].startswith("https://news.example.org/unsubscribe/")
    token = uris[0].rsplit("/", 1)[1]
    assert signer.verify("unsubscribe", token).values == (42, 7)


def test_body_has_visible_unsubscribe_and_preferences_links(builder: Any, signer: Signer) -> None:
    msg = parse(builder().build(recipient(n=5))[1])
    unsubscribe = re.findall(r"<([^>]*)>", msg["List-Unsubscribe"])[0]
    for part in msg.iter_parts():
        body = part.get_content()
        assert unsubscribe in body
        token = re.search(r"https://news\.example\.org/preferences/([\w.-]+)", body).group(1)
        assert signer.verify("preferences", token).values == (5, 7)
        assert "https://news.example.org/archive/fr/2026/2026-11-coalition-update/" in body


def test_feedback_id_is_the_same_for_every_recipient(builder: Any) -> None:
    b = builder()
    values = {parse(b.build(recipient(n))[1])["Feedback-ID"] for n in range(1, 20)}
    assert len(values) == 1


def test_parts_are_text_then_html_utf8_and_decode_to_the_filled_bodies(
        builder: Any, fake_edition: Any) -> None:
    edition = fake_edition()
    msg = parse(builder(edition).build(recipient(name="Zoë"))[1])
    html, text = edition.filled[-1]
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert lf(parts[0].get_content()) == text
    assert lf(parts[1].get_content()) == html
    assert "«Zoë»" in parts[1].get_content()


def test_no_line_exceeds_998_octets_even_with_minified_html(builder: Any) -> None:
    _, data = builder().build(recipient())
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert max(len(line) for line in folded_lines(data)) <= 78
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    assert data.isascii()


def test_transfer_encodings_are_fixed_before_signing(builder: Any) -> None:
    msg = parse(builder().build(recipient())[1])
    encodings = [p["Content-Transfer-Encoding"] for p in msg.iter_parts()]
    assert encodings == ["quoted-printable", "base64"]


@pytest.mark.parametrize("name", [
    "Amélie Dupont",  # French
    "José Ñúñez Peña",  # Spanish
    "فاطمة الزهراء",  # Arabic
    "Łukasz Żółć — a very long name that certainly needs more than one encoded word to fit",
])
def test_non_ascii_names_are_encoded_words_and_the_address_never_is(
        builder: Any, name: str) -> None:
    _, data = builder().build(recipient(name=name, email="person@example.net"))
    head = header_block(data)
    assert head.isascii()
    to_lines = re.search(rb"^To:.*?(?=^\S)", head + b"\r\nX", re.M | re.S).group(0)
    assert b"=?utf-8?b?" in to_lines
    assert b"<person@example.net>" in to_lines
    assert all(len(line) <= 76 for line in folded_lines(data))
    to = parse(data)["To"].addresses[0]
    assert to.addr_spec == "person@example.net"
    # RFC 2047 decoding; Python's address parser wrongly puts a space between adjacent encoded
    # words in a display name, so it only reads back names that fit in one word.
    decoded = str(make_header(decode_header(to_lines[3:].decode())))
    assert decoded == f"{name} <person@example.net>"
    if len(name.encode()) <= 45:
        assert to.display_name == name


@pytest.mark.parametrize("name", [
    "Łukasz Żółć — a very long name that certainly needs more than one encoded word to fit",
    "María José Fernández de la Peña y Hernández-Núñez, Coordinadora Regional",
])
def test_long_names_split_at_plain_words_so_python_reads_them_back_too(
        builder: Any, name: str) -> None:
    _, data = builder().build(recipient(name=name, email="person@example.net"))
    assert all(len(line) <= 76 for line in folded_lines(data))
    assert parse(data)["To"].addresses[0].display_name == name


@pytest.mark.parametrize("subject", [
    "Actualités de la coalition : réfugiés et migrants, novembre 2026",
    "Boletín de la coalición: ¿qué pasó en noviembre? Niños, niñas y familias migrantes " * 2,
    "A plain ASCII subject that is long enough to need folding across several header lines",
    "Looks like =?utf-8?q?an_encoded_word?= but is plain text",
])
def test_subjects_are_encoded_and_folded_and_read_back_exactly(
        builder: Any, fake_edition: Any, subject: str) -> None:
    _, data = builder(fake_edition(subject=subject)).build(recipient())
    head = header_block(data)
    assert head.isascii()
    assert all(len(line) <= 78 for line in folded_lines(data))
    assert parse(data)["Subject"] == subject.strip()


def test_ascii_names_with_specials_are_quoted(builder: Any) -> None:
    name = 'O"Brien, Pat (ACME) <boss@evil.example>'
    msg = parse(builder().build(recipient(name=name, email="pat@example.net"))[1])
    assert len(msg["To"].addresses) == 1
    assert msg["To"].addresses[0].display_name == name
    assert msg["To"].addresses[0].addr_spec == "pat@example.net"


@pytest.mark.parametrize("evil", [
    "Eve\r\nBcc: victim@example.com",
    "Eve\nBcc: victim@example.com",
    "Eve\rBcc: victim@example.com",
    "Eve\r\n\r\n<html>fake body</html>",
    "Eve\u2028Bcc: victim@example.com",
    "Ève\r\nBcc: victim@example.com",
])
def test_cr_lf_in_a_name_or_subject_cannot_add_a_header(
        builder: Any, fake_edition: Any, evil: str) -> None:
    edition = fake_edition(subject=f"Hello {evil}")
    b = builder(edition, list_name=f"List {evil}")
    _, data = b.build(recipient(name=evil, email="eve@example.net"))
    msg = parse(data)
    assert msg["Bcc"] is None
    assert msg.get_content_type() == "multipart/alternative"
    assert len(msg.get_all("To")) == 1
    assert msg["To"].addresses[0].addr_spec == "eve@example.net"
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]
    assert "victim@example.com" in msg["Subject"] or "fake body" in msg["Subject"]
    names = [k.lower() for k in msg]
    assert "bcc" not in names and len(names) == len(set(names) - {"received"})


def test_idn_domain_is_punycode_in_header_and_envelope(builder: Any) -> None:
    _, data = builder().build(recipient(email="maría@correo.españa.example".replace("í", "i")))
    assert b"<maria@correo.xn--espaa-rta.example>" in header_block(data)
    assert smtp_address("maria@correo.españa.example") == "maria@correo.xn--espaa-rta.example"


@pytest.mark.parametrize("bad", ["josé@example.org", "no-at-sign", "a b@example.org",
                                 "x@exa mple.org", "a@b\r\nBcc: c@d.org"])
def test_unwritable_addresses_are_refused_with_a_clear_error(builder: Any, bad: str) -> None:
    with pytest.raises(NewsletterError, match="address|domain|SMTPUTF8"):
        builder().build(recipient(email=bad))


@pytest.mark.parametrize("name", ["", None, "  \r\n "])
def test_missing_name_gives_a_bare_address_and_the_default_greeting(
        builder: Any, fake_edition: Any, name: Any) -> None:
    edition = fake_edition()
    r = Recipient(delivery_id=1, subscriber_id=1, email="anon@example.net", name=name,
                  attributes=None)  # type: ignore[arg-type]
    msg = parse(builder(edition).build(r)[1])
    assert str(msg["To"]) == "anon@example.net"
    assert "Bonjour ami·e," in edition.filled[-1][1]


def test_non_ascii_list_name_and_from_name_are_encoded(builder: Any) -> None:
    _, data = builder(list_name="Boletín Coalición").build(recipient())
    head = header_block(data)
    assert head.isascii()
    msg = parse(data)
    assert msg["List-Id"] == "Boletín Coalición <news.lists.example.org>"
    assert b"news@example.org" in head and b"=?utf-8?b?" in head


def test_envelope_sender_is_a_verp_address_for_the_delivery(builder: Any, signer: Signer) -> None:
    sender, _ = builder().build(recipient(n=3))
    local, _, domain = sender.partition("@")
    assert domain == "bounces.example.org"
    assert local.startswith("bounces+")
    assert "amelie" not in sender
    assert signer.verify("verp", local.split("+", 1)[1]).values == (1003,)
    assert len(local) <= 64


TRICKY = [
    "line with trailing spaces   \nand\ttabs\t\n.\n..leading dots\nFrom the start\n= equals =3D\n",
    "x" * 5000 + "\n" + "é" * 3000,  # one very long line, then multibyte ones
    "mixed\r\nline\rendings\n\n\nend without newline ",
    "",
]


@pytest.mark.parametrize("body", TRICKY)
def test_tricky_bodies_survive_encoding_exactly(builder: Any, fake_edition: Any,
                                                body: str) -> None:
    edition = fake_edition(text=body, html=f"<p>{body}</p>")
    _, data = builder(edition).build(recipient())
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    text_part, html_part = parse(data).iter_parts()
    expected = body.replace("\r\n", "\n").replace("\r", "\n")
    assert lf(text_part.get_content()) == expected
    assert lf(html_part.get_content()) == f"<p>{expected}</p>"


@pytest.mark.parametrize(("section", "key", "value", "where"), [
    ("newsletter", "list_id_domain", "lists.example.org\r\nBcc: x@evil.example", "list_id_domain"),
    ("newsletter", "message_id_domain", "bad domain", "message_id_domain"),
    ("newsletter", "reply_to", "editors at example.org", "reply_to"),
    ("newsletter", "from_address", "news@example.org\r\nBcc: x@evil.example", "from_address"),
    ("newsletter", "base_url", "https://news.example.org/a b", "base_url"),
    ("newsletter", "base_url", "https://actualités.example.org", "base_url"),
    ("bounces", "domain", "bounces..example.org", "[bounces]"),
])
def test_unusable_settings_are_reported_by_name_not_written_into_headers(
        builder: Any, tmp_path: Any, section: str, key: str, value: str, where: str) -> None:
    from newsletter.config import ConfigError, load_settings

    settings = load_settings(tmp_path / "bad", environ={}, overrides={
        "newsletter": {"secret_key": SECRET}, section: {key: value}})
    with pytest.raises(ConfigError, match=re.escape(where)):
        builder(settings=settings)


def test_crlf_in_configured_names_stays_inside_the_header(builder: Any, tmp_path: Any) -> None:
    from newsletter.config import load_settings

    settings = load_settings(tmp_path / "crlf", environ={}, overrides={"newsletter": {
        "secret_key": SECRET, "from_name": "News\r\nBcc: x@evil.example",
        "sender_id": "id\r\nX-Evil: 1"}})
    msg = parse(builder(settings=settings, list_name="L\nX-Evil: 2").build(recipient())[1])
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert msg["From"].addresses[0].addr_spec == "newsletter@example.org"
    assert msg["Feedback-ID"].endswith(":newsletter:id-X-Evil--1")
