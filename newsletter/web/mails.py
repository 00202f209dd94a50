"""The system mails the web app sends: confirmation, welcome and "your preferences link".

Each is multipart/alternative (text/plain first, text/html last), UTF-8, quoted-printable,
written in the subscriber's language from web.po. Building never sends: the services put the
bytes in the outbox.
"""

from __future__ import annotations

import email.policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from newsletter.config import Settings
from newsletter.db.models import utcnow
from newsletter.web.pages import render, translator

POLICY = email.policy.SMTP.clone(max_line_length=78)


def clean_header_text(value: str, limit: int = 200) -> str:
    """Drop control characters (CR, LF, ...) so a value stays inside its one header."""
    return "".join(ch for ch in value if ch.isprintable())[:limit].strip()


class SystemMails:
    """Builds system mails from the organisation's settings; used by the opt-in services."""

    def __init__(self, settings: Settings) -> None:
        site = settings["newsletter"]
        self.site_name = site["name"]
        self.from_name = site["from_name"] or site["name"]
        self.sender = site["from_address"]
        self.reply_to = site["reply_to"]
        self.logo_url = site["logo_url"]
        self.organisation = site["organisation"]
        self.postal_address = site["postal_address"]
        domain = site["message_id_domain"] or self.sender.rpartition("@")[2] or "localhost"
        self.message_id_domain = domain

    def _message(
        self,
        kind: str,
        to: str,
        name: str,
        language: str,
        subject: str,
        headers: dict[str, str] | None = None,
        **ctx: Any,
    ) -> bytes:
        context = {
            "site_name": self.site_name,
            "logo_url": self.logo_url,
            "organisation": self.organisation,
            "postal_address": self.postal_address,
            "name": name,
            "subject": subject,
            **ctx,
        }
        msg = EmailMessage(policy=POLICY)
        msg["From"] = Address(clean_header_text(self.from_name), addr_spec=self.sender)
        msg["To"] = Address(clean_header_text(name), addr_spec=to)
        msg["Subject"] = clean_header_text(subject, 300)
        msg["Date"] = format_datetime(utcnow())
        msg["Message-ID"] = make_msgid(kind, domain=self.message_id_domain)
        if self.reply_to:
            msg["Reply-To"] = self.reply_to
        msg["Auto-Submitted"] = "auto-generated"
        for header, value in (headers or {}).items():
            msg[header] = value
        msg.set_content(render(f"mail/{kind}.txt", language, **context), cte="quoted-printable")
        msg.add_alternative(
            render(f"mail/{kind}.html", language, **context), subtype="html", cte="quoted-printable"
        )
        msg["Content-Language"] = language  # after set_content, which drops Content-* headers
        return msg.as_bytes(policy=POLICY)

    def confirmation(
        self, *, email: str, name: str, language: str, list_name: str, url: str, days: int
    ) -> bytes:
        """Ask the address owner to confirm; the link expires after `days`."""
        _ = translator(language)
        subject = _("Please confirm your subscription to %(list)s", list=list_name)
        return self._message(
            "confirm", email, name, language, subject, list_name=list_name, url=url, days=days
        )

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
    ) -> bytes:
        """Greet a new subscriber once confirmed (only for lists that ask for it)."""
        _ = translator(language)
        subject = _("Welcome to %(list)s", list=list_name)
        return self._message(
            "welcome",
            email,
            name,
            language,
            subject,
            headers={  # a list's own mail, so one click leaves it (RFC 2369, RFC 8058)
                "List-Unsubscribe": f"<{unsubscribe_url}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            list_name=list_name,
            text=text,
            preferences_url=preferences_url,
            unsubscribe_url=unsubscribe_url,
        )

    def preferences_link(self, *, email: str, name: str, language: str, url: str) -> bytes:
        """Send the personal preferences link asked for on the generic /manage page."""
        _ = translator(language)
        subject = _("Your link to manage your subscription to %(site)s", site=self.site_name)
        return self._message("preferences", email, name, language, subject, url=url)
