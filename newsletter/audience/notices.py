"""The mails the opt-in workflow queues: confirmation and welcome (their text is web/mails.py's).

Each goes through the outbox in the caller's transaction, so it leaves only if the change that
needs it commits. Confirmation mails are limited per address a day (ADDRESS_WINDOW).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection

from newsletter.audience.lists import localized_list
from newsletter.links import confirm_url, preferences_url, unsubscribe_url
from newsletter.outbox import count_recent, enqueue

if TYPE_CHECKING:
    from newsletter.audience.optin import OptIn

ADDRESS_WINDOW = timedelta(days=1)


class Mailer(Protocol):
    """Builds system mails (see newsletter.web.mails.SystemMails)."""

    sender: str

    def confirmation(
        self, *, email: str, name: str, language: str, list_name: str, url: str, days: int
    ) -> bytes: ...

    def welcome(
        self,
        *,
        email: str,
        name: str,
        language: str,
        list_name: str,
        text: str,
        preferences_url: str,
        unsubscribe_url: str,
    ) -> bytes: ...

    def preferences_link(self, *, email: str, name: str, language: str, url: str) -> bytes: ...

    def signature_verification(
        self, *, email: str, name: str, language: str, organisation: str, url: str, days: int
    ) -> bytes: ...




def welcome_text(ctx: OptIn, mlist: Mapping[str, Any], language: str) -> str | None:
    """None when the list sends no welcome mail; else its extra text in this language (or in
    the list's default language)."""
    setting = ctx.welcome.get(mlist["slug"])
    if not setting:
        return None
    if isinstance(setting, dict):
        return str(setting.get(language) or setting.get(mlist["default_language"]) or "")
    return ""


def enqueue_welcome(
    ctx: OptIn, conn: Connection, subscriber: dict[str, Any], mlist: dict[str, Any], language: str
) -> None:
    """Queue the list's welcome mail, if it has one."""
    text = welcome_text(ctx, mlist, language)
    if text is None:
        return
    ids = (subscriber["id"], mlist["id"])
    message = ctx.mailer.welcome(
        email=subscriber["email"],
        name=subscriber["name"],
        language=language,
        list_name=list_name(mlist, language),
        text=text,
        preferences_url=preferences_url(ctx.base_url, ctx.signer, *ids),
        unsubscribe_url=unsubscribe_url(ctx.base_url, ctx.signer, *ids),
    )
    enqueue(conn, "welcome", subscriber["email"], ctx.mailer.sender, message)


def enqueue_confirmation(
    ctx: OptIn,
    conn: Connection,
    subscriber: dict[str, Any],
    mlist: dict[str, Any],
    language: str,
    name: str,
    now: datetime,
) -> bool:
    """Queue one confirmation mail unless the address had its share today."""
    since = now - ADDRESS_WINDOW
    if count_recent(conn, "confirm", subscriber["email"], since) >= ctx.max_per_address:
        return False
    message = ctx.mailer.confirmation(
        email=subscriber["email"],
        name=name,
        language=language,
        list_name=list_name(mlist, language),
        url=confirm_url(ctx.base_url, ctx.signer, subscriber["id"], mlist["id"]),
        days=ctx.confirm_days,
    )
    enqueue(conn, "confirm", subscriber["email"], ctx.mailer.sender, message)
    return True




def list_name(mlist: Mapping[str, Any], language: str) -> str:
    """The list's name in the reader's language."""
    return localized_list(mlist, language)["name"]
