"""The fast SMTP transaction: what arrives is byte for byte what the builder made."""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest

from newsletter.delivery.wire import dot_stuff, send_data, send_mail_from, send_rcpt_to

MESSAGE = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: dots\r\n\r\n"
    b".leading dot\r\n..two dots\r\nmiddle . dot\r\n.\r\nend\r\n"
)


def test_dot_stuffing_doubles_only_leading_dots_and_terminates():
    assert dot_stuff(b"a\r\n.b\r\n") == b"a\r\n..b\r\n.\r\n"
    assert dot_stuff(b".x") == b"..x\r\n.\r\n"


async def _transaction(port: int, rcpt: str) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=5)
    await client.connect()
    try:
        await send_mail_from(client, "bounces+t@example.org")
        await send_rcpt_to(client, rcpt)
        await send_data(client, MESSAGE)
    finally:
        client.close()


def test_message_with_leading_dots_arrives_unchanged(smtp_server):
    asyncio.run(_transaction(smtp_server.port, "b@example.org"))
    (sender, rcpts, data), = smtp_server.messages
    assert sender == "bounces+t@example.org" and rcpts == ["b@example.org"]
    assert data.replace(b"\r\n", b"\n").endswith(MESSAGE.replace(b"\r\n", b"\n"))


def test_refused_recipient_raises_the_librarys_exception(smtp_server):
    smtp_server.reply_for = lambda rcpt, n: "550 5.1.1 no such user"
    with pytest.raises(aiosmtplib.SMTPRecipientRefused) as info:
        asyncio.run(_transaction(smtp_server.port, "gone@example.org"))
    assert info.value.code == 550
    assert smtp_server.messages == []
