"""The misbehaving test SMTP server does what its switches promise (other tests rely on it)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiosmtplib
import pytest

MSG = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


async def _send(server: Any, rcpt: str = "b@example.org", timeout: float = 5.0,
                client: aiosmtplib.SMTP | None = None):
    smtp = client or aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=timeout)
    if not smtp.is_connected:
        await smtp.connect()
    return await smtp.sendmail("bounces+x@example.org", [rcpt], MSG)


def test_server_stores_envelope_and_bytes(smtp_server: Any) -> None:
    asyncio.run(_send(smtp_server))
    assert smtp_server.wait_for(1)
    sender, rcpts, data = smtp_server.messages[0]
    assert sender == "bounces+x@example.org"
    assert rcpts == ["b@example.org"]
    assert data == MSG
    assert smtp_server.parsed()[0]["Subject"] == "hi"
    assert smtp_server.connections == 1


def test_reply_policy_rejects_per_recipient_and_attempt(smtp_server: Any) -> None:
    smtp_server.reply_for = lambda rcpt, n: "451 4.3.0 try later" if n == 1 else None

    async def scenario():
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
            await _send(smtp_server)
        assert info.value.recipients[0].code == 451
        await _send(smtp_server)

    asyncio.run(scenario())
    assert len(smtp_server.messages) == 1


def test_data_failures_and_drops_are_not_stored(smtp_server: Any) -> None:
    smtp_server.fail_data_once = True
    smtp_server.data_reply_for = lambda rcpts, n: "550 5.7.1 no" if rcpts == ["x@y.org"] else None

    async def scenario():
        with pytest.raises(aiosmtplib.SMTPDataError) as info:
            await _send(smtp_server)
        assert info.value.code == 451
        with pytest.raises(aiosmtplib.SMTPDataError) as info:
            await _send(smtp_server, "x@y.org")
        assert info.value.code == 550
        smtp_server.drop_connection_in_data = True
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await _send(smtp_server)
        await _send(smtp_server)

    asyncio.run(scenario())
    assert len(smtp_server.messages) == 1


def test_lost_reply_after_data_still_stores_the_message(smtp_server: Any) -> None:
    smtp_server.lose_reply_after_data = 1

    async def scenario():
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await _send(smtp_server)

    asyncio.run(scenario())
    assert len(smtp_server.messages) == 1


def test_421_closes_the_connection_after_n_messages(smtp_server: Any) -> None:
    smtp_server.close_after(2)

    async def scenario():
        client = aiosmtplib.SMTP(hostname=smtp_server.host, port=smtp_server.port, timeout=5)
        await client.connect()
        await _send(smtp_server, client=client)
        await _send(smtp_server, client=client)
        with pytest.raises(aiosmtplib.SMTPResponseException) as info:
            await _send(smtp_server, client=client)
        assert info.value.code == 421
        await _send(smtp_server)  # a new connection works again

    asyncio.run(scenario())
    assert len(smtp_server.messages) == 3


def test_hung_server_times_out_the_client(smtp_server: Any) -> None:
    smtp_server.hang = True

    async def scenario():
        with pytest.raises(aiosmtplib.SMTPTimeoutError):
            await _send(smtp_server, timeout=0.3)

    asyncio.run(scenario())
    smtp_server.hang = False
    asyncio.run(_send(smtp_server))
    assert len(smtp_server.messages) == 1


def test_stopped_server_refuses_then_restarts_on_same_port(smtp_server: Any) -> None:
    port = smtp_server.port
    smtp_server.stop()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        asyncio.run(_send(smtp_server))
    smtp_server.start()
    assert smtp_server.port == port
    asyncio.run(_send(smtp_server))
    assert len(smtp_server.messages) == 1


def test_unused_port_has_no_listener(unused_port: int) -> None:
    async def scenario():
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=unused_port, timeout=2)
        with pytest.raises(aiosmtplib.SMTPConnectError):
            await client.connect()

    asyncio.run(scenario())
