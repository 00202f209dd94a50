"""DKIM: the operator's key signs the right headers and dkimpy verifies the message."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiosmtplib
import dkim as dkimpy
import idna
import pytest

from newsletter.config import load_settings
from newsletter.delivery.dkim import DkimError, dns_record, load_dkim
from newsletter.delivery.message import MessageBuilder, Recipient
from newsletter.tokens import Signer
from tests.conftest import require_module

SECRET = "test-secret-key-0123456789"
REQUIRED = {"from", "subject", "date", "message-id", "to", "list-id", "list-unsubscribe",
            "list-unsubscribe-post", "mime-version", "content-type", "feedback-id"}


def dkim_settings(ws: Path, key_path: str, selector: str = "nl2026", domain: str = "") -> Any:
    ws.mkdir(parents=True, exist_ok=True)
    return load_settings(ws, environ={}, overrides={
        "newsletter": {"secret_key": SECRET, "base_url": "https://news.example.org",
                       "from_address": "news@example.org", "from_name": "Coalición"},
        "dkim": {"key_path": key_path, "selector": selector, "domain": domain},
    })


def dns_for(signer: Any) -> Any:
    """The one thing faked: DNS answers the TXT record the operator would publish."""
    name, value = dns_record(signer)

    def dnsfunc(qname: bytes, timeout: int = 5) -> bytes | None:
        return value.encode() if qname.decode().rstrip(".") == name else None

    return dnsfunc


@pytest.fixture(params=["openssl", "dkimpy"])
def engine(request: pytest.FixtureRequest) -> str:
    """Sign with OpenSSL's RSA (cryptography installed) and with dkimpy's own code."""
    if request.param == "openssl":
        require_module("cryptography")
    return request.param


def with_engine(signer: Any, engine: str) -> Any:
    return signer if engine == "openssl" else dataclasses.replace(signer, rsa_key=None)


def build(settings: Any, fake_edition: Any, engine: str = "openssl", **kw: Any
          ) -> tuple[Any, bytes]:
    if engine == "openssl":
        require_module("cryptography")
    signer = with_engine(load_dkim(settings), engine)
    assert signer.engine == engine
    builder = MessageBuilder(settings=settings, edition=fake_edition(**kw), issue_slug="i1",
                             list_id=3, list_slug="news", list_name="News",
                             signer=Signer(SECRET), dkim=signer)
    _, data = builder.build(Recipient(9, 4, "amelie@example.net", "Amélie Ñ", {}))
    return signer, data


def test_signed_message_verifies_and_covers_the_unsubscribe_headers(
        tmp_path: Path, key_file: Path, fake_edition: Any, engine: str) -> None:
    signer, data = build(dkim_settings(tmp_path / "ws", str(key_file)), fake_edition, engine,
                         subject="Actualités : réfugiés")
    assert data.startswith(b"DKIM-Signature: ")
    assert dkimpy.verify(data, dnsfunc=dns_for(signer))
    header = re.search(rb"DKIM-Signature:(.*?)\r\n(?=\S)", data, re.S).group(1)
    tags = dict(t.strip().split("=", 1) for t in
                re.sub(r"\s+", "", header.decode()).split(";") if t)
    assert tags["c"] == "relaxed/relaxed"
    assert tags["d"] == "example.org" and tags["s"] == "nl2026"
    assert set(tags["h"].lower().split(":")) >= REQUIRED


def test_tampered_subject_or_unsubscribe_link_fails_verification(
        tmp_path: Path, key_file: Path, fake_edition: Any, engine: str) -> None:
    signer, data = build(dkim_settings(tmp_path / "ws", str(key_file)), fake_edition, engine)
    dns = dns_for(signer)
    assert dkimpy.verify(data, dnsfunc=dns)
    assert not dkimpy.verify(data.replace(b"Subject: Nouvelles", b"Subject: Nouvellez"),
                             dnsfunc=dns)
    assert not dkimpy.verify(data.replace(b"/unsubscribe/", b"/unsubscrib3/", 1), dnsfunc=dns)
    extra = data.replace(b"\r\nTo: ", b"\r\nReply-To: evil@example.com\r\nTo: ", 1)
    assert not dkimpy.verify(extra, dnsfunc=dns)
    body = data.index(b"\r\n\r\n") + 200
    assert not dkimpy.verify(data[:body] + data[body:].replace(b"A", b"B", 1), dnsfunc=dns)


RAW = [
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject:  spaced \t out  \r\n"
    b"\r\nline with trailing space   \r\n\ttabbed\t\tline\r\n\r\n\r\n",
    b"From: a@example.org\r\nSubject: folded\r\n  over\r\n\tlines\r\n\r\n",
    b"From: a@example.org\r\nContent-Language: fr\r\nTo: x@example.org\r\n"
    b"Content-Language: es\r\n\r\nbody",
    b"From: a@example.org\r\nTo: b@example.org\r\n\r\n \r\n  \r\n",
]


@pytest.mark.parametrize("raw", RAW)
def test_fast_signer_canonicalizes_like_dkimpy(
        tmp_path: Path, key_file: Path, raw: bytes) -> None:
    require_module("cryptography")
    signer = load_dkim(dkim_settings(tmp_path / "ws", str(key_file)))
    fast = signer.sign(raw)
    reference = signer.sign_with_dkimpy(raw)
    assert dkimpy.verify(fast + raw, dnsfunc=dns_for(signer))
    assert dkimpy.verify(reference + raw, dnsfunc=dns_for(signer))
    bh = [re.search(rb"bh=([^;]+);", re.sub(rb"\s+", b"", sig)).group(1)
          for sig in (fast, reference)]
    assert bh[0] == bh[1]


def test_messages_with_bare_newlines_are_signed_by_dkimpy(tmp_path: Path, key_file: Path) -> None:
    signer = load_dkim(dkim_settings(tmp_path / "ws", str(key_file)))
    raw = b"From: a@example.org\nTo: b@example.org\n\nbody\n"
    assert dkimpy.verify(signer.sign(raw) + raw, dnsfunc=dns_for(signer))


def test_signature_survives_a_real_smtp_hop(
        tmp_path: Path, key_file: Path, fake_edition: Any, smtp_server: Any, engine: str) -> None:
    settings = dkim_settings(tmp_path / "ws", str(key_file))
    signer = with_engine(load_dkim(settings), engine)
    builder = MessageBuilder(settings=settings, edition=fake_edition(), issue_slug="i1",
                             list_id=3, list_slug="news", list_name="News",
                             signer=Signer(SECRET), dkim=signer)
    sender, data = builder.build(Recipient(9, 4, "a@example.net", "A", {}))

    async def send() -> None:
        async with aiosmtplib.SMTP(hostname=smtp_server.host, port=smtp_server.port) as smtp:
            await smtp.sendmail(sender, ["a@example.net"], data)

    asyncio.run(send())
    envelope_from, _rcpts, received = smtp_server.messages[0]
    assert envelope_from == sender
    assert received.rstrip(b"\r\n") == data.rstrip(b"\r\n")
    assert dkimpy.verify(received, dnsfunc=dns_for(signer))


def test_domain_defaults_to_the_from_address_domain(tmp_path: Path, key_file: Path) -> None:
    signer = load_dkim(dkim_settings(tmp_path / "ws", str(key_file)))
    assert signer.domain == b"example.org"
    other = load_dkim(dkim_settings(tmp_path / "ws2", str(key_file), domain="mail.example.org"))
    assert other.domain == b"mail.example.org"


def test_no_key_path_means_no_signing(tmp_path: Path) -> None:
    assert load_dkim(dkim_settings(tmp_path / "ws", "")) is None


def test_key_path_is_relative_to_the_workspace(tmp_path: Path, key_file: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "keys").mkdir(parents=True)
    (ws / "keys" / "dkim.pem").write_bytes(key_file.read_bytes())
    assert load_dkim(dkim_settings(ws, "keys/dkim.pem")) is not None


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DkimError, match=r"\[dkim\] key_path: cannot read .*nope\.pem"):
        load_dkim(dkim_settings(tmp_path / "ws", "nope.pem"))


@pytest.mark.parametrize("content", [b"", b"hello", b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n---"
                                     b"--END RSA PRIVATE KEY-----\n"])
def test_unusable_key_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.pem").write_bytes(content)
    with pytest.raises(DkimError, match="not a PEM RSA private key"):
        load_dkim(dkim_settings(tmp_path / "ws", str(tmp_path / "bad.pem")))


def test_short_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(path), "512"], check=True,
                   capture_output=True)
    with pytest.raises(DkimError, match="under 1024 bits"):
        load_dkim(dkim_settings(tmp_path / "ws", str(path)))


def test_selector_is_required_with_a_key(tmp_path: Path, key_file: Path) -> None:
    with pytest.raises(DkimError, match=r"\[dkim\] selector"):
        load_dkim(dkim_settings(tmp_path / "ws", str(key_file), selector=""))


def test_crlf_pem_file_is_accepted(tmp_path: Path, key_file: Path, fake_edition: Any) -> None:
    (tmp_path / "crlf.pem").write_bytes(key_file.read_bytes().replace(b"\n", b"\r\n"))
    signer, data = build(dkim_settings(tmp_path / "ws", str(tmp_path / "crlf.pem")),
                         fake_edition)
    assert dkimpy.verify(data, dnsfunc=dns_for(signer))


@pytest.mark.parametrize(("selector", "domain", "match"), [
    ("nl\r\nX: 1", "", r"\[dkim\] selector"),
    ("nl 2026", "", r"\[dkim\] selector"),
    ("nl2026", "exa mple.org", r"\[dkim\] domain"),
])
def test_selector_and_domain_that_would_break_the_header_are_refused(
        tmp_path: Path, key_file: Path, selector: str, domain: str, match: str) -> None:
    with pytest.raises(DkimError, match=match):
        load_dkim(dkim_settings(tmp_path / "ws", str(key_file), selector=selector, domain=domain))


def test_idn_dkim_domain_is_written_in_punycode(tmp_path: Path, key_file: Path) -> None:
    signer = load_dkim(dkim_settings(tmp_path / "ws", str(key_file), domain="coalición.example"))
    assert signer.domain == idna.encode("coalición.example")
    assert signer.domain.startswith(b"xn--")


@pytest.mark.parametrize("body", [
    b"",
    b"\r\n\r\n",
    b"plain text\r\nbase64AAAA\r\n",
    b"one \t two  three\r\nQUJD\r\n",
    b"x \t\r\nQUJD\r\n \tindented\r\nQUJD\r\nend  \t \r\n\r\n",  # a space before the first tab
    b"QUJD\r\nQUJD\r\nlast line \t without end",
    b"\t\r\n  \r\n",
    b"a  b\r\n" + b"QUJDREVG" * 2000 + b"\r\nc\t\td \r\n",  # both ends of a long body
])
def test_the_fast_body_canonicalization_matches_dkimpys(body: bytes) -> None:
    from dkim.canonicalization import Relaxed

    from newsletter.delivery.dkim import _relaxed_body

    assert _relaxed_body(body) == Relaxed.canonicalize_body(body)


def imported(ws: Path, dkim: str, statement: str, packages: tuple[str, ...]) -> str:
    """Which modules of `packages` a fresh interpreter has imported after loading the send's
    modules and the settings (`dkim`: the [dkim] overrides, "" for none) and running
    `statement`."""
    ws.mkdir()
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from newsletter.config import load_settings\n"
        "from newsletter.delivery import dispatch, runner\n"
        "from newsletter.delivery.message import load_dkim\n"
        f"settings = load_settings(Path({str(ws)!r}), environ={{}}, overrides={{\n"
        f"    'newsletter': {{'secret_key': {SECRET!r}, 'from_address': 'news@example.org'}},\n"
        f"    {dkim}}})\n"
        f"{statement}\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {packages!r}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_signing_with_openssl_does_not_import_dkimpy_or_dnspython(
        tmp_path: Path, key_file: Path) -> None:
    """dkimpy imports dnspython, which cost every sender process about 0.2 s of CPU at start."""
    require_module("cryptography")
    sign = ("header = load_dkim(settings).sign(b'From: a@example.org\\r\\n\\r\\nbody\\r\\n')\n"
            "assert header.startswith(b'DKIM-Signature: ')")
    dkim = f"'dkim': {{'key_path': {str(key_file)!r}, 'selector': 's1'}}"
    assert imported(tmp_path / "ws", dkim, sign, ("dkim", "dns")) == "[]"


def test_a_send_without_a_dkim_key_does_not_import_cryptography(tmp_path: Path) -> None:
    """`cryptography` cost every process that imports the message builder 11-18 ms at start
    (the parent of every send and each worker), even when nothing is signed."""
    statement = "assert load_dkim(settings) is None"
    assert imported(tmp_path / "ws", "", statement, ("cryptography",)) == "[]"


def test_the_send_modules_do_not_import_psycopg_until_a_postgresql_connection_opens(
        tmp_path: Path) -> None:
    """psycopg's imports cost a send on SQLite, and each of its spawned workers, ~0.13 s of
    CPU at start; db/pgsend.py loads it when it opens its first connection."""
    assert imported(tmp_path / "ws", "", "pass", ("psycopg",)) == "[]"
