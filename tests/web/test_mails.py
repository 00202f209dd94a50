"""System mails: standard structure, the subscriber's language, no header injection."""

from __future__ import annotations

import email
import email.policy

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
