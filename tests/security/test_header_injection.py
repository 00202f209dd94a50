"""No header or body injection into any mail, whatever a person types (trust issue, item 1).

A name (or list name, or subject) holding an RFC 2047 encoded word that spells CR/LF once made
the confirmation mail carry the attacker's Reply-To, Content-Type and HTML body: the system
mails were built with `EmailMessage`, whose parser decodes such a word and writes the CR/LF out.
Every payload here goes the whole way a real one would: the subscribe form (or the CLI), the
outbox, a real SMTP server; what arrives is parsed with Python's email parser.
"""

from __future__ import annotations

import base64
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

import pytest

from newsletter.audience.names import clean_name
from newsletter.delivery.headers import clean_text
from tests.conftest import Cli
from tests.web.conftest import BASE_URL, WebEnv, link_in

HOSTILE = ("x\r\nReply-To: attacker@evil.org\r\nContent-Type: text/html\r\n\r\n"
           "<h1>Account locked</h1>")
Q_WORD = ("=?utf-8?q?x=0D=0AReply-To:_attacker@evil.org=0D=0AContent-Type:_text/html"
          "=0D=0A=0D=0A<h1>Account_locked</h1>?=")
B_WORD = f"=?utf-8?b?{base64.b64encode(HOSTILE.encode()).decode()}?="
PAYLOADS = {
    "q-encoded word": Q_WORD,
    "b-encoded word": B_WORD,
    "upper-case charset and encoding": Q_WORD.replace("=?utf-8?q?", "=?UTF-8?Q?"),
    "latin-1 word": Q_WORD.replace("utf-8", "iso-8859-1"),
    "folded encoded words": "=?utf-8?q?x=0D=0AReply-To:?=\r\n =?utf-8?q?_attacker@evil.org?=\r\n"
                            " =?utf-8?q?=0D=0A=0D=0A<h1>Account_locked</h1>?=",
    "several words": "Ana =?utf-8?q?=0D=0AReply-To:?= =?utf-8?b?IGF0dGFja2VyQGV2aWwub3Jn?= Pérez",
    "raw CR/LF": HOSTILE,
    "NUL and CR/LF": "x\x00\r\nReply-To: attacker@evil.org\x00\r\n\r\n<h1>Account locked</h1>",
    "word inside quotes": f'"{Q_WORD}"',
}
VICTIM = "victim@example.org"
ORGANISATION_REPLY_TO = "office@example.org"
OUR_HEADERS = {
    "from", "to", "subject", "date", "message-id", "reply-to", "auto-submitted", "list-id",
    "list-unsubscribe", "list-unsubscribe-post", "feedback-id", "content-language",
    "mime-version", "content-type", "dkim-signature",
}


def raw_header(message: EmailMessage, name: str) -> str:
    """The header's text as it arrived (folded, encoded words not decoded)."""
    [value] = [v for k, v in message.raw_items() if k.lower() == name.lower()]
    return str(value)


def rfc2047(message: EmailMessage, name: str) -> str:
    """The header decoded as RFC 2047 says: the space between two encoded words is dropped.

    Python's address parser instead puts a space there, so a display name longer than one
    encoded word is compared this way.
    """
    return str(make_header(decode_header(raw_header(message, name))))


def assert_only_our_headers_and_body(message: EmailMessage, reply_to: str | None) -> None:
    """One Reply-To (ours) or none, our multipart/alternative, our text and HTML."""
    found = message.get_all("Reply-To") or []
    assert [str(v) for v in found] == ([reply_to] if reply_to else [])
    for name in ("From", "To", "Subject", "Content-Type", "MIME-Version", "Message-ID"):
        assert len(message.get_all(name) or []) == 1, name
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert not message.defects
    html = message.get_body(("html",)).get_content()
    assert "<h1>Account" not in html  # escaped as text, never markup
    assert html.lstrip().lower().startswith("<!doctype html>") and 'role="presentation"' in html
    names = [k.lower() for k in message]
    assert len(names) == len(set(names)) and set(names) <= OUR_HEADERS, names


def display_name(message: EmailMessage) -> str:
    """The To display name as a reader shows it (RFC 2047 decoding when it is encoded)."""
    if "=?" not in raw_header(message, "To"):
        return str(message["To"].addresses[0].display_name)
    return rfc2047(message, "To").removesuffix(f" <{message['To'].addresses[0].addr_spec}>")


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_a_hostile_name_on_the_subscribe_form_stays_inside_the_to_header(
        web: WebEnv, payload: str) -> None:
    client = web.other_app({"newsletter": {"reply_to": ORGANISATION_REPLY_TO}})
    web.add_list()
    answer = client.post("/subscribe/news", data={"email": VICTIM, "name": payload})
    assert answer.status_code in (200, 303)
    assert web.deliver().sent == 1
    [message] = web.smtp.messages
    assert_only_our_headers_and_body(message, ORGANISATION_REPLY_TO)
    [to] = message["To"].addresses
    assert to.addr_spec == VICTIM
    stored = web.subscriber(VICTIM)["name"]
    assert stored == clean_name(payload)  # one line, the rule every way in follows
    assert display_name(message) == clean_text(stored)
    assert to.display_name.replace(" ", "") == stored.replace(" ", "")
    assert f"{BASE_URL}/confirm/" in message.get_body(("plain",)).get_content()


def test_without_an_organisation_reply_to_the_mail_has_none(web: WebEnv) -> None:
    web.add_list()
    web.client.post("/subscribe/news", data={"email": VICTIM, "name": Q_WORD})
    web.deliver()
    [message] = web.smtp.messages
    assert_only_our_headers_and_body(message, None)
    assert display_name(message) == Q_WORD


def test_an_address_our_headers_cannot_carry_gets_the_form_error_and_nothing_is_stored(
        web: WebEnv) -> None:
    web.add_list()
    answer = web.client.post("/subscribe/news", data={"email": "josé@example.org", "name": "J"})
    assert answer.status_code == 400 and "must be plain ASCII" in answer.text
    assert web.subscriber("josé@example.org") is None and web.outbox() == []


def test_the_welcome_and_preferences_mails_keep_a_hostile_name_inside_to(web: WebEnv) -> None:
    client = web.other_app({"web": {"welcome": {"news": {"en": "One issue a month."}}}})
    web.add_list()
    client.post("/subscribe/news", data={"email": VICTIM, "name": Q_WORD, "language": "en"})
    web.deliver()
    confirm = link_in(web.smtp.messages[0], f"{BASE_URL}/confirm/").removeprefix(BASE_URL)
    client.post(confirm)
    client.post("/manage", data={"email": VICTIM})
    web.deliver()
    welcome, preferences = web.smtp.messages[1:]
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    for message in (welcome, preferences):
        assert_only_our_headers_and_body(message, None)
        assert display_name(message) == Q_WORD


@pytest.mark.parametrize("payload", [Q_WORD, B_WORD], ids=["q", "b"])
def test_a_hostile_list_name_stays_inside_the_subject(web: WebEnv, payload: str) -> None:
    Cli(web.settings.workspace)("lists", "add", "news", "--name", payload, "--languages", "en")
    web.client.post("/subscribe/news", data={"email": VICTIM, "name": "Ana"})
    web.deliver()
    [message] = web.smtp.messages
    assert_only_our_headers_and_body(message, None)
    assert message["Subject"] == f"Please confirm your subscription to {payload}"
    assert message["To"].addresses[0].display_name == "Ana"


def write_issue(workspace: Path, subject: str, list_slug: str = "news") -> None:
    folder = workspace / "issues" / "hostile"
    folder.mkdir(parents=True)
    (folder / "issue.toml").write_text(f'list = "{list_slug}"\ndate = 2026-11-20\n', "utf-8")
    (folder / "en.md").write_text(
        f'+++\nsubject = {subject}\ntitle = "Coalition news"\npreheader = "The month"\n+++\n\n'
        "Hello {{ name | default(\"friend\") }},\n\nNews from the coalition.\n", "utf-8")


@pytest.mark.parametrize("subject", [Q_WORD, B_WORD], ids=["q", "b"])
def test_a_hostile_subject_in_a_test_send_stays_inside_the_subject(
        web: WebEnv, subject: str) -> None:
    """Newsletter headers were never built with EmailMessage; this guards that they stay so."""
    run = Cli(web.settings.workspace)
    run("lists", "add", "news", "--name", Q_WORD, "--languages", "en")
    write_issue(web.settings.workspace, f'"{subject}"')
    run("send", "hostile", "--test-to", "editor@example.org")
    [message] = web.smtp.messages
    assert_only_our_headers_and_body(message, None)
    assert message["Subject"] == "[TEST] " + subject  # test copies say so
    assert message["List-Id"].startswith(Q_WORD)


def test_a_subject_with_line_breaks_is_refused_before_any_test_send(web: WebEnv) -> None:
    run = Cli(web.settings.workspace)
    run("lists", "add", "news", "--name", "News", "--languages", "en")
    write_issue(web.settings.workspace,
                '"News\\r\\nReply-To: attacker@evil.org\\r\\n\\r\\n<h1>Account locked</h1>"')
    result = run("send", "hostile", "--test-to", "editor@example.org", ok=False)
    assert result.exit_code == 1 and "subject contains a line break" in result.output
    assert "Traceback" not in result.output and web.smtp.messages == []
