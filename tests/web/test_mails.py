"""System mails: standard structure, the subscriber's language, no header injection."""

from __future__ import annotations

import email
import email.policy
import re

from newsletter.web.mails import SystemMails
from tests.web.conftest import WebEnv


def _parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_confirmation_mail_is_text_then_html_in_the_chosen_language(web: WebEnv) -> None:
    raw = SystemMails(web.settings).confirmation(
        email="ana@example.org",
        name="Ana",
        language="es",
        list_name="Boletín",
        url="https://news.example.org/confirm/abc.def",
        days=7,
    )
    message = _parse(raw)
    assert message.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in message.iter_parts())
    assert message["Subject"] == "Confirme su suscripción a Boletín"
    assert message["Content-Language"] == "es" and message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@example.org>")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "https://news.example.org/confirm/abc.def" in text and "7 días" in text
    assert '<html lang="es">' in html and 'role="presentation"' in html
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_a_name_with_line_breaks_cannot_inject_headers(web: WebEnv) -> None:
    raw = SystemMails(web.settings).confirmation(
        email="x@example.org",
        name="Eve\r\nBcc: victim@example.org",
        language="en",
        list_name="News\nX-Evil: 1",
        url="https://news.example.org/confirm/t",
        days=7,
    )
    message = _parse(raw)
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert "victim@example.org" in message["To"]  # kept inside the display name


def test_welcome_mail_is_sent_on_confirmation_when_the_list_asks(web: WebEnv) -> None:
    client = web.other_app({"web": {"welcome": {"news": {"fr": "Un numéro par mois."}}}})
    web.add_list()
    client.post("/subscribe/news", data={"email": "w@example.org", "language": "fr"})
    web.deliver()
    from tests.web.conftest import BASE_URL, link_in

    confirm = link_in(web.smtp.messages[0], f"{BASE_URL}/confirm/").removeprefix(BASE_URL)
    client.post(confirm)
    web.deliver()
    welcome = web.smtp.messages[1]
    assert welcome["Subject"] == "Bienvenue à Network News"
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    one_click = welcome["List-Unsubscribe"].strip(" <>").removeprefix(BASE_URL)  # may be folded
    assert client.post(one_click, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    text = welcome.get_body(("plain",)).get_content()
    assert "Un numéro par mois." in text and "/unsubscribe/" in text and "/preferences/" in text


def _all_system_mails(client, web: WebEnv) -> dict[str, bytes]:  # noqa: ANN001 - TestClient
    """Confirmation, welcome and preferences-link mails, as the outbox stored them to send."""
    from tests.web.conftest import BASE_URL, link_in

    web.add_list()
    client.post("/subscribe/news", data={"email": "ana@example.org", "name": "Ana Pérez",
                                         "language": "fr"})
    web.deliver()
    confirm = link_in(web.smtp.messages[0], f"{BASE_URL}/confirm/").removeprefix(BASE_URL)
    client.post(confirm)
    client.post("/manage", data={"email": "ana@example.org"})
    return {row["kind"]: bytes(row["message"]) for row in web.outbox()}


def test_system_mails_are_built_like_newsletters(web: WebEnv) -> None:
    from email.utils import parsedate_to_datetime

    from newsletter.db.models import utcnow

    client = web.other_app({"web": {"welcome": {"news": {"fr": "Un numéro par mois."}}}})
    mails = _all_system_mails(client, web)
    assert sorted(mails) == ["confirm", "preferences", "welcome"]
    for kind, raw in mails.items():
        head, body = raw.split(b"\r\n\r\n", 1)
        assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
        assert all(len(line) <= 76 for line in body.split(b"\r\n")), kind  # RFC 2045 §6.7
        assert all(len(line) <= 76 for line in head.split(b"\r\n")
                   if not line.startswith(b"List-Unsubscribe:")), kind
        message = _parse(raw)
        assert re.fullmatch(r"<[^@<>\s]+@example\.org>", message["Message-ID"]), kind
        assert abs((utcnow() - parsedate_to_datetime(message["Date"])).total_seconds()) < 60
        text, html = message.iter_parts()
        assert text["Content-Transfer-Encoding"] == "quoted-printable"
        assert html["Content-Transfer-Encoding"] == "base64"
        assert message["To"].addresses[0].display_name == "Ana Pérez"


def test_system_mails_are_dkim_signed_when_dkim_is_configured(web: WebEnv, tmp_path) -> None:
    import subprocess

    import dkim as dkimpy

    from newsletter.config import load_settings
    from newsletter.delivery.dkim import dns_record, load_dkim

    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    overrides = {"dkim": {"key_path": str(key), "selector": "sys2026", "domain": "example.org"},
                 "web": {"welcome": {"news": {"fr": "Un numéro par mois."}}}}
    client = web.other_app(overrides)
    signer = load_dkim(load_settings(web.settings.workspace, overrides=overrides))
    name, record = dns_record(signer)

    def dnsfunc(qname: bytes, timeout: int = 5) -> bytes | None:  # the one thing faked: DNS
        return record.encode() if qname.decode().rstrip(".") == name else None

    for kind, raw in _all_system_mails(client, web).items():
        assert raw.startswith(b"DKIM-Signature: "), kind
        assert dkimpy.verify(raw, dnsfunc=dnsfunc), kind
        signed = re.search(rb"h=([^;]+);", raw.replace(b"\r\n ", b"")).group(1).split(b":")
        assert {b"from", b"to", b"subject", b"date", b"message-id"} <= set(signed)
        if kind == "welcome":
            assert {b"list-unsubscribe", b"list-unsubscribe-post"} <= set(signed)
        tampered = raw.replace(b"Subject: ", b"Subject: Re: ", 1)
        assert not dkimpy.verify(tampered, dnsfunc=dnsfunc)
