"""Shared by the opt-in service tests: an OptIn on the test database, lists with a name in each
language, and plain reads of what the services wrote (rows, events, the queued mails)."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy import Engine, insert, select

from newsletter.audience.listedits import add_list
from newsletter.audience.optin import OptIn
from newsletter.db.models import Event, OutboxMessage, Subscriber, Subscription, Suppression
from newsletter.keyring import address_hash
from newsletter.web.mails import SystemMails

NAMES = {"en": "News", "fr": "Nouvelles", "es": "Noticias"}


def optin(services: Any, **changes: Any) -> OptIn:
    """The OptIn the web app builds from the test settings, with some fields changed."""
    settings = services.settings
    return replace(OptIn.from_settings(settings, services.engine, SystemMails(settings)), **changes)


def three_language_list(engine: Engine, slug: str = "news", *, double: bool = True) -> int:
    """A list offered in en, fr and es (default en), named in each; its id."""
    return add_list(engine, slug=slug, name=dict(NAMES), languages=["en", "fr", "es"],
                    default_language="en", double_opt_in=double).id


def rows(engine: Engine, model: Any, **where: Any) -> list[dict[str, Any]]:
    table = model.__table__
    query = select(table).order_by(table.c.id)
    for key, value in where.items():
        query = query.where(table.c[key] == value)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def subscriber(engine: Engine, address: str) -> dict[str, Any] | None:
    found = rows(engine, Subscriber, email=address)
    return found[0] if found else None


def subscription(engine: Engine, sid: int, list_id: int) -> dict[str, Any] | None:
    found = rows(engine, Subscription, subscriber_id=sid, list_id=list_id)
    return found[0] if found else None


def events(engine: Engine, kind: str | None = None) -> list[dict[str, Any]]:
    return rows(engine, Event, kind=kind) if kind else rows(engine, Event)


def mails(engine: Engine, kind: str | None = None) -> list[dict[str, Any]]:
    """The queued system mails (not the form jobs), oldest first."""
    found = rows(engine, OutboxMessage, status="queued")
    return [row for row in found if kind is None or row["kind"] == kind]


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def text_of(raw: bytes) -> str:
    return parse(raw).get_body(("plain",)).get_content()  # type: ignore[union-attr]


def suppress(engine: Engine, key: str, address: str, when: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Suppression.__table__).values(
            email_hash=address_hash(address, key), reason="complaint", detail="",
            created_at=when))
