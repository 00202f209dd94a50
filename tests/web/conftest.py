"""Fixtures for the web app: a configured app on the test database, a real SMTP server
(aiosmtpd) that can refuse on demand, and factories for lists and subscribers.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from newsletter.config import Settings, load_settings
from newsletter.db.engine import make_engine
from newsletter.db.models import (
    Event,
    MailingList,
    OutboxMessage,
    Subscriber,
    Subscription,
    utcnow,
)
from newsletter.delivery.capture import SmtpController
from newsletter.outbox import OutboxReport, deliver_outbox
from newsletter.services import build_services
from newsletter.tokens import Signer
from tests.conftest import SECRET, drop_newsletter_env, write_config

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; httpx (installed) still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BASE_URL = "https://news.example.org"


def unused_port() -> int:
    """A TCP port nobody listens on right now: only for "the server is down" tests. A server
    a test starts binds port 0 instead and reports the port it got (no race between runs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RecordingHandler:
    """Keeps every accepted message; answers 451 to the first `refuse` DATA commands."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse = 0
        self.reject_permanently = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reject_permanently:
            return "550 5.1.1 no such user"
        if self.refuse > 0:
            self.refuse -= 1
            return "451 4.3.0 try again later"
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 OK"


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server on loopback that records what it accepts."""
    handler = RecordingHandler()
    controller = SmtpController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    yield SmtpServer("127.0.0.1", controller.port, handler)
    controller.stop()


@dataclass
class WebEnv:
    """An app, its settings and engine, a client, and helpers to look into the database."""

    settings: Settings
    engine: Engine
    client: TestClient
    smtp: SmtpServer
    signer: Signer = field(init=False)

    def __post_init__(self) -> None:
        self.signer = Signer(SECRET)

    def other_app(self, overrides: dict[str, dict[str, Any]]) -> TestClient:
        """A second app on the same database with some settings changed (e.g. key rotation)."""
        from newsletter.web import create_app

        settings = load_settings(self.settings.workspace, overrides=overrides)
        engine = None if "database" in overrides else self.engine
        return TestClient(create_app(build_services(settings, engine=engine)), base_url=BASE_URL)

    def deliver(self, now: datetime | None = None) -> OutboxReport:
        """Run one pass of the outbox worker, as `newsletter outbox send` does.

        In a thread of its own, so it also works beside Playwright's event loop.
        """
        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(asyncio.run, deliver_outbox(self.settings, self.engine, now=now))
            return job.result()

    def rows(self, model: Any, **where: Any) -> list[Any]:
        table = model.__table__
        query = select(table).order_by(table.c.id)
        for key, value in where.items():
            query = query.where(table.c[key] == value)
        with self.engine.connect() as conn:
            return list(conn.execute(query).mappings())

    def subscription(self, subscriber_id: int, list_id: int) -> Any:
        rows = self.rows(Subscription, subscriber_id=subscriber_id, list_id=list_id)
        return rows[0] if rows else None

    def subscriber(self, email_address: str) -> Any:
        rows = self.rows(Subscriber, email=email_address)
        return rows[0] if rows else None

    def events(self, kind: str | None = None) -> list[Any]:
        return self.rows(Event, kind=kind) if kind else self.rows(Event)

    def outbox(self, kind: str | None = None) -> list[Any]:
        return self.rows(OutboxMessage, kind=kind) if kind else self.rows(OutboxMessage)

    def add_list(
        self,
        slug: str = "news",
        name: str = "Network News",
        languages: tuple[str, ...] = ("en", "fr", "es"),
        default_language: str = "en",
        opt_in: str = "double",
        public: bool = True,
    ) -> int:
        with self.engine.begin() as conn:
            return conn.execute(
                MailingList.__table__.insert().values(
                    slug=slug,
                    name=name,
                    languages=list(languages),
                    opt_in=opt_in,
                    default_language=default_language,
                    public=public,
                    description="",
                    created_at=utcnow(),
                )
            ).inserted_primary_key[0]

    def add_subscriber(
        self,
        address: str,
        list_id: int | None = None,
        status: str = "confirmed",
        language: str | None = "en",
        name: str = "",
    ) -> int:
        now = utcnow()
        with self.engine.begin() as conn:
            sid = conn.execute(
                Subscriber.__table__.insert().values(
                    email=address,
                    name=name,
                    language=language,
                    attributes={},
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key[0]
            if list_id is not None:
                conn.execute(
                    Subscription.__table__.insert().values(
                        subscriber_id=sid,
                        list_id=list_id,
                        status=status,
                        created_at=now,
                        updated_at=now,
                        confirmed_at=now if status == "confirmed" else None,
                    )
                )
        return sid


def web_config(smtp: SmtpServer, extra: str = "") -> str:
    """TOML for the web tests: SMTP at the test server, outbox worker off (tests drive it)."""
    return f"""
[smtp]
host = "{smtp.host}"
port = {smtp.port}
timeout = 5

[web]
outbox_interval = 0
{extra}
"""


@pytest.fixture
def web_extra() -> str:
    """Extra [web] lines; override in a test module to change limits."""
    return ""


@pytest.fixture
def web(
    tmp_path: Path, db_url: str, smtp: SmtpServer, web_extra: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[WebEnv]:
    """The app on a fresh database (SQLite and PostgreSQL), with a TestClient."""
    from newsletter.web import create_app

    drop_newsletter_env(monkeypatch)
    ws = tmp_path / "webws"
    write_config(ws, db_url, web_config(smtp, web_extra))
    settings = load_settings(ws)
    engine = make_engine(settings.database_url)
    app = create_app(build_services(settings, engine=engine))
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        yield WebEnv(settings, engine, client, smtp)
    engine.dispose()


def link_in(message: EmailMessage, prefix: str) -> str:
    """The first URL in the text part that starts with prefix."""
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    for word in body.get_content().split():
        if word.startswith(prefix):
            return word
    raise AssertionError(f"no link starting with {prefix} in:\n{body.get_content()}")
