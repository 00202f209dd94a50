"""The SMTP transaction on the wire: bytes arrive as built, replies are read in order."""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest

from newsletter.delivery.wire import DATA, Wire, dot_stuff, mail_from, rcpt_to

MESSAGE = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: dots\r\n\r\n"
    b".leading dot\r\n..two dots\r\nmiddle . dot\r\n.\r\nend\r\n"
)


def test_dot_stuffing_doubles_only_leading_dots_and_terminates():
    assert b"".join(dot_stuff(b"a\r\n.b\r\n")) == b"a\r\n..b\r\n.\r\n"
    assert b"".join(dot_stuff(b".x")) == b"..x\r\n.\r\n"
    assert b"".join(dot_stuff(b"a.b\r\nc. d.\r\n")) == b"a.b\r\nc. d.\r\n.\r\n"
    assert b"".join(dot_stuff(b"a\r\nb\r\n...")) == b"a\r\nb\r\n....\r\n.\r\n"


@pytest.mark.parametrize("address", ["josé@example.org", "a@example.org>\r\nRSET"])
def test_an_address_smtp_cannot_carry_is_refused_before_anything_is_written(address):
    with pytest.raises(ValueError):
        rcpt_to(address)


async def _transaction(port: int, rcpt: str, pipelined: bool) -> list[tuple[int, str]]:
    """MAIL, RCPT, DATA (in one write or one at a time), then the message: every reply."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=5)
    await client.connect()
    await client.ehlo()
    wire = Wire.take_over(client)
    commands = [mail_from("bounces+t@example.org"), rcpt_to(rcpt), DATA]
    replies = []
    try:
        if pipelined:
            wire.write(*commands)
        for command in commands:
            if not pipelined:
                wire.write(command)
            replies.append(await wire.reply())
        if replies[-1][0] == 354:
            wire.write(*dot_stuff(MESSAGE))
            replies.append(await wire.reply())
    finally:
        wire.close()
    return replies


@pytest.mark.parametrize("pipelined", [False, True])
def test_message_with_leading_dots_arrives_unchanged(smtp_server, pipelined):
    replies = asyncio.run(_transaction(smtp_server.port, "b@example.org", pipelined))
    assert [code for code, _text in replies] == [250, 250, 354, 250]
    (sender, rcpts, data), = smtp_server.messages
    assert sender == "bounces+t@example.org" and rcpts == ["b@example.org"]
    assert data.replace(b"\r\n", b"\n").endswith(MESSAGE.replace(b"\r\n", b"\n"))


def test_replies_to_pipelined_commands_come_back_one_by_one_in_order(smtp_server):
    smtp_server.reply_for = lambda rcpt, n: "550 5.1.1 no such user"
    replies = asyncio.run(_transaction(smtp_server.port, "gone@example.org", pipelined=True))
    assert replies[:2] == [(250, "OK"), (550, "5.1.1 no such user")]
    assert replies[2][0] == 503 and len(replies) == 3  # DATA without a recipient
    assert smtp_server.messages == []


async def _slow_server_waits(timeout: float, first_after: float) -> tuple[float, float]:
    """A server that answers the first NOOP after `first_after` s and never the second: how
    long the first reply took, and how long the second wait lasted before it timed out."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 slow\r\n")
        await reader.readline()  # EHLO
        writer.write(b"250 slow\r\n")
        await reader.readline()  # the first NOOP
        await asyncio.sleep(first_after)
        writer.write(b"250 late\r\n")
        await reader.read()  # the second NOOP: no answer, ever

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False,
                             timeout=timeout)
    await client.connect()
    await client.ehlo()
    wire = Wire.take_over(client)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        wire.write(b"NOOP\r\n")
        assert await wire.reply() == (250, "late")
        first = loop.time() - started
        started = loop.time()
        wire.write(b"NOOP\r\n")
        with pytest.raises(aiosmtplib.SMTPReadTimeoutError):
            await wire.reply()
        return first, loop.time() - started
    finally:
        wire.close()
        server.close()


def test_each_wait_for_a_reply_gets_the_whole_timeout():
    """A reply that comes late but in time is read; the next wait times out a full timeout
    after it began, not when the first wait's timer would have fired."""
    first, second = asyncio.run(_slow_server_waits(timeout=0.6, first_after=0.4))
    assert 0.35 <= first < 0.6
    assert second >= 0.59


class _Transport:
    """Enough of a transport for Wire's reading side."""

    def __init__(self) -> None:
        self.aborted = False

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def test_replies_read_the_same_whole_split_or_multi_line():
    """One-line replies that arrive whole take a shortcut; multi-line replies and replies cut
    anywhere by the network still come out whole and in order."""
    stream = (b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
              b"250-2.0.0 first line\r\n250 2.0.0 queued as AB-12\r\n550 5.1.1 no-such user\r\n")
    expected = [(250, "2.1.0 Ok"), (250, "2.1.5 Ok"), (354, "End data with <CR><LF>.<CR><LF>"),
                (250, "2.0.0 first line\n2.0.0 queued as AB-12"), (550, "5.1.1 no-such user")]
    for cut in range(len(stream) + 1):
        wire = Wire(_Transport(), None)  # type: ignore[arg-type]
        wire.data_received(stream[:cut])
        wire.data_received(stream[cut:])
        assert list(wire.replies) == expected, cut
        assert wire.lost is None


def test_a_reply_without_a_code_loses_the_connection():
    wire = Wire(_Transport(), None)  # type: ignore[arg-type]
    wire.data_received(b"250 Ok\r\nhello there\r\n")
    assert wire.lost is not None and "malformed reply" in str(wire.lost)
