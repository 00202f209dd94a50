"""A real SMTP server (aiosmtpd, in a thread) that records messages and misbehaves on request.

`smtp_server` yields a started `FaultySMTPServer`:

- `.host`, `.port`; `.messages`: list of (envelope_from, rcpt_tos, message bytes), in arrival order.
- `.reply_for = lambda rcpt, n: None | "451 4.3.0 try later"`: reply to the n-th RCPT TO (1-based,
  counted per address) instead of accepting it. A reply starting with 421 also closes the
  connection, as a real server does.
- `.data_reply_for = lambda rcpts, n: None | "550 5.7.1 spam"`: same, at the end of DATA
  (n counts DATA attempts for the first recipient). The message is not stored when rejected.
- `.fail_data_once = True` (or an int N): the next N DATA commands end with
  "451 4.3.0 temporary failure"; not stored.
- `.drop_connection_in_data = True` (or N): the next N DATA commands read the message, then the
  server drops the connection without a reply; the message is NOT stored.
- `.lose_reply_after_data = True` (or N): the message IS stored, then the connection drops before
  the reply: the "unknown" case, where the client cannot tell whether it arrived.
- `.close_after(n)`: once n more messages have been stored, the next MAIL FROM gets
  "421 4.3.2 Service shutting down" and the connection closes (once).
- `.hang = True`: every command from now on (EHLO, MAIL, RCPT, DATA) gets no answer until
  `.hang = False` or the client gives up (its timeout); connecting still works.
- `.stop()` / `.start()`: take the server down and bring it back on the same port
  ("server down at the start": stop it first, or use `unused_port()`).
- `.wait_for(count, timeout)`, `.by_rcpt()`, `.parsed()` help assertions.
- `.connections`: number of SMTP sessions opened so far.
- `.pipelining = True`: EHLO offers PIPELINING (RFC 2920; aiosmtpd reads pipelined commands in
  order but does not advertise it). `.grouped` counts what arrived in one read: "envelope"
  (RCPT TO and DATA together) and "end and next envelope" (a message's end and the next MAIL).

`smtp_server_factory()` starts more servers (stopped at teardown); `unused_port` is a port with
no listener. Use the fixtures rather than `from conftest import ...`: tests/conftest.py is also
a module named "conftest". The server part only needs aiosmtpd, so every delivery test can
share it.

For message tests without a database: `fake_edition(**fields)` makes a stand-in for the
composer's CompiledEdition (one ~9 KB minified HTML line, French text, recording each fill),
and `message_settings` is a Settings with an https base URL, a sender identity and a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import socket
import subprocess
import threading
import time
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

ReplyPolicy = Callable[[str, int], "str | None"]
DataPolicy = Callable[[list[str], int], "str | None"]
HANG_SECONDS = 3600.0


def unused_port() -> int:
    """A loopback TCP port nobody listens on (for "server down" tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    """aiosmtpd hooks that consult the server's fault switches."""

    def __init__(self, owner: FaultySMTPServer) -> None:
        self.owner = owner

    async def _hold_if_hung(self) -> None:
        # Cancelled by aiosmtpd when the client closes the connection.
        while self.owner.hang:
            await asyncio.sleep(0.05)

    async def handle_EHLO(self, server: SMTP, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        await self._hold_if_hung()
        session.host_name = hostname
        if self.owner.pipelining:  # aiosmtpd reads pipelined commands but does not say so
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: SMTP, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        await self._hold_if_hung()
        owner = self.owner
        with owner.lock:
            closing = owner._close_at is not None and len(owner.messages) >= owner._close_at
            if closing:
                owner._close_at = None
        if closing:
            await _close_with(server, "421 4.3.2 Service shutting down")
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        await self._hold_if_hung()
        owner = self.owner
        with owner.lock:
            owner.rcpt_attempts[address] += 1
            n = owner.rcpt_attempts[address]
        reply = owner.reply_for(address, n) if owner.reply_for else None
        if reply:
            if reply.startswith("421"):
                await _close_with(server, reply)
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        await self._hold_if_hung()
        owner = self.owner
        rcpts = list(envelope.rcpt_tos)
        with owner.lock:
            owner.data_attempts[rcpts[0]] += 1
            n = owner.data_attempts[rcpts[0]]
            fail = owner._take("fail_data_once")
            drop = not fail and owner._take("drop_connection_in_data")
            lose = not fail and not drop and owner._take("lose_reply_after_data")
        if fail:
            return "451 4.3.0 temporary failure"
        if drop:
            await _close_with(server, None)
        reply = owner.data_reply_for(rcpts, n) if owner.data_reply_for else None
        if reply:
            if reply.startswith("421"):
                await _close_with(server, reply)
            return reply
        with owner.lock:
            owner.messages.append((envelope.mail_from, rcpts, bytes(envelope.original_content)))
            owner.arrived.notify_all()
        if lose:
            await _close_with(server, None)
        return "250 2.0.0 OK queued"


async def _close_with(server: SMTP, reply: str | None) -> None:
    """Send an optional last reply, close the connection, and wait to be cancelled."""
    if reply:
        await server.push(reply)
    transport = server.transport
    if transport is not None:
        transport.close() if reply else transport.abort()
    await asyncio.sleep(HANG_SECONDS)  # connection_lost() cancels us


class _Controller(Controller):
    """Controller that accepts port 0 and keeps the bound port; tracks open sessions."""

    def __init__(self, handler: _Handler, host: str, port: int, owner: FaultySMTPServer):
        super().__init__(handler, hostname=host, port=port, ready_timeout=10,
                         server_hostname="test.smtp.local", data_size_limit=None)
        self.owner = owner
        self.sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def factory(self) -> SMTP:
        smtp = SMTP(self.handler, **self.SMTP_kwargs)
        owner, received = self.owner, smtp.data_received

        def data_received(data: bytes) -> None:
            with owner.lock:  # what the client wrote together arrives together on loopback
                if b"RCPT TO:" in data and b"DATA\r\n" in data:
                    owner.grouped["envelope"] += 1
                if b"\r\n.\r\nMAIL FROM:" in data:
                    owner.grouped["end and next envelope"] += 1
            received(data)

        smtp.data_received = data_received  # type: ignore[method-assign]
        self.sessions.add(smtp)
        with self.owner.lock:
            self.owner.connections += 1
        return smtp

    def _create_server(self):  # type: ignore[override]
        async def bind():
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=self.port)
            self.port = server.sockets[0].getsockname()[1]
            return server
        return bind()

    def _trigger_server(self) -> None:
        # The base class opens a probe connection; count it out of `.connections`.
        super()._trigger_server()
        with self.owner.lock:
            self.owner.connections -= 1

    async def close_clients(self) -> None:
        """Close the listener and every live session so stop() leaves no pending task."""
        if self.server is not None:
            self.server.close()
        for smtp in list(self.sessions):
            if smtp.transport is not None:
                smtp.transport.abort()
        await asyncio.sleep(0.05)


class FaultySMTPServer:
    """An in-process SMTP server for tests: stores messages, fails when told to."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.reply_for: ReplyPolicy | None = None
        self.data_reply_for: DataPolicy | None = None
        self.fail_data_once: bool | int = False
        self.drop_connection_in_data: bool | int = False
        self.lose_reply_after_data: bool | int = False
        self.hang = False
        self.pipelining = False
        self.grouped: Counter[str] = Counter()
        self.connections = 0
        self.rcpt_attempts: Counter[str] = Counter()
        self.data_attempts: Counter[str] = Counter()
        self._close_at: int | None = None
        self._controller: _Controller | None = None

    def _take(self, switch: str) -> bool:
        """Consume one use of a counting switch (True counts as 1). Caller holds the lock."""
        left = int(getattr(self, switch))
        if left <= 0:
            return False
        setattr(self, switch, left - 1)
        return True

    def start(self) -> FaultySMTPServer:
        """Listen (again) on .host/.port; port 0 picks a free one the first time."""
        if self._controller is None:
            self._controller = _Controller(_Handler(self), self.host, self.port, self)
            self._controller.start()
            self.port = self._controller.port
        return self

    def stop(self) -> None:
        """Stop listening and drop every session."""
        if self._on_server_loop():
            # Called from a handler (a server dying mid-session): the server's own thread
            # cannot join itself, so another thread stops it while this reply goes out.
            threading.Thread(target=self.stop).start()
            return
        controller, self._controller = self._controller, None
        if controller is None:
            return
        self.hang = False
        future = asyncio.run_coroutine_threadsafe(controller.close_clients(), controller.loop)
        with contextlib.suppress(Exception):  # the listener is closed either way
            future.result(timeout=5)
        controller.stop(no_assert=True)

    def _on_server_loop(self) -> bool:
        controller = self._controller
        try:
            return controller is not None and asyncio.get_running_loop() is controller.loop
        except RuntimeError:  # no running loop in this thread
            return False

    @property
    def running(self) -> bool:
        return self._controller is not None

    def close_after(self, n: int) -> None:
        """Answer 421 and close the connection at the first MAIL FROM after n more messages."""
        with self.lock:
            self._close_at = len(self.messages) + n

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until at least `count` messages arrived; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.arrived.wait(left)
        return True

    def by_rcpt(self) -> dict[str, list[bytes]]:
        """Messages grouped by recipient address."""
        out: dict[str, list[bytes]] = defaultdict(list)
        for _sender, rcpts, data in list(self.messages):
            for rcpt in rcpts:
                out[rcpt].append(data)
        return dict(out)

    def parsed(self) -> list[EmailMessage]:
        """Every stored message parsed with the standard library's modern policy."""
        parser = BytesParser(policy=email.policy.default)
        return [parser.parsebytes(data) for _f, _r, data in list(self.messages)]  # type: ignore[misc]

    def __enter__(self) -> FaultySMTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., FaultySMTPServer]]:
    """Start any number of FaultySMTPServer; all are stopped at teardown."""
    started: list[FaultySMTPServer] = []

    def make(host: str = "127.0.0.1", port: int = 0) -> FaultySMTPServer:
        server = FaultySMTPServer(host, port).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: Callable[..., FaultySMTPServer]) -> FaultySMTPServer:
    """A running, well-behaved SMTP server until a test flips one of its fault switches."""
    return smtp_server_factory()


@pytest.fixture(params=[False, True], ids=["lock-step", "pipelined"])
def both_pipelinings(request: pytest.FixtureRequest, smtp_server: FaultySMTPServer):
    """A test using it runs twice: against a relay without PIPELINING and one offering it
    (RFC 2920); the pipelined run checks the pipelined path was really taken."""
    smtp_server.pipelining = request.param
    yield request.param
    if request.param and smtp_server.messages:
        assert smtp_server.grouped["envelope"] > 0


@pytest.fixture(name="unused_port")
def unused_port_fixture() -> int:
    """A loopback port with no listener: the relay that is down."""
    return unused_port()


# --- Message-building helpers: a stand-in edition and settings, no database needed. ---------

FAKE_HTML = (
    '<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{subject}</title>'
    '</head><body><table role="presentation" width="600">'
    + "".join(f"<tr><td><p>Paragraphe {i} : réfugiés, migrants, solidarité — «{{name}}».</p>"
              "</td></tr>" for i in range(60))
    + '<tr><td><a href="{web_url}">Voir en ligne</a> · <a href="{preferences_url}">Préférences'
    "</a> · <a href=\"{unsubscribe_url}\">Se désabonner</a></td></tr></table></body></html>"
)
FAKE_TEXT = (
    "Bonjour {name},\n\n"
    + "\n\n".join(f"Paragraphe {i} : réfugiés, migrants, solidarité. " * 8 for i in range(10))
    + "\n\nVoir en ligne : {web_url}\nPréférences : {preferences_url}\n"
    "Se désabonner : {unsubscribe_url}\n"
)


class FakeEdition:
    """Same surface as the composer's CompiledEdition: fields plus fill(slots) -> (html, text)
    and pieces(slots).

    The HTML is one minified line of about 9 KB, so the message must break it up.
    """

    def __init__(self, *, language: str = "fr", subject: str = "Nouvelles de la coalition",
                 slug: str = "2026-11-coalition-update", list_slug: str = "news",
                 date: object = None, html: str = FAKE_HTML, text: str = FAKE_TEXT) -> None:
        self.language = language
        self.subject = subject
        self.preheader = "Aperçu du numéro"
        self.slug = slug
        self.list_slug = list_slug
        self.date = date or "2026-11-20"  # an ISO string, as CompiledEdition has it
        self._html = html
        self._text = text
        self.filled: list[tuple[str, str]] = []

    def fill(self, slots: Any) -> tuple[str, str]:
        import html as _html

        def render(template: str, escape: Callable[[str], str]) -> str:
            return (template.replace("{lang}", self.language)
                    .replace("{subject}", escape(self.subject))
                    .replace("{name}", escape(slots.name or "ami·e"))
                    .replace("{web_url}", escape(slots.web_url))
                    .replace("{preferences_url}", escape(slots.preferences_url))
                    .replace("{unsubscribe_url}", escape(slots.unsubscribe_url)))

        result = (render(self._html, _html.escape), render(self._text, str))
        self.filled.append(result)
        return result

    def pieces(self, slots: Any) -> tuple[list[str], list[str]]:
        """fill() as one value between two empty literal chunks (what MessageBuilder reads)."""
        html, text = self.fill(slots)
        return ["", html, ""], ["", text, ""]


@pytest.fixture
def fake_edition() -> Callable[..., FakeEdition]:
    """Factory for a stand-in compiled edition (use until the composer's examples are wired)."""
    return FakeEdition


@pytest.fixture
def message_settings(tmp_path: Any) -> Any:
    """Settings for building messages: https base URL, a sender identity, a secret key."""
    from newsletter.config import load_settings

    (tmp_path / "newsletter.toml").write_text(
        """[newsletter]
name = "Test Network News"
base_url = "https://news.example.org"
from_address = "news@example.org"
from_name = "Réseau Migrations & Co"
reply_to = "editors@example.org"
sender_id = "coalition"
list_id_domain = "lists.example.org"
message_id_domain = "mail.example.org"
secret_key = "test-secret-key-0123456789"

[bounces]
domain = "bounces.example.org"
local_part = "bounces"
""",
        encoding="utf-8",
    )
    return load_settings(tmp_path, environ={})


@pytest.fixture
def db(workspace: Any, db_url: str) -> Iterator[Any]:
    """The test database behind a sender engine, with helpers to make and read delivery rows
    (tests/delivery/queue_fixtures.py): for in-process tests of queue.py and journal.py."""
    from newsletter.db.sender import sender_engine
    from tests.conftest import address_key
    from tests.delivery.queue_fixtures import QueueDb

    key = address_key(db_url)
    engine = sender_engine(db_url, key)
    yield QueueDb(engine, key, workspace)
    engine.dispose()


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2048-bit RSA key for DKIM, made once (openssl genrsa)."""
    path = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"], check=True,
                   capture_output=True)
    return path
