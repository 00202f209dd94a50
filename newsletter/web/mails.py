"""The system mails the web app sends: confirmation, welcome, "your preferences link" and the
verification of a statement's signature.

Each is built like a newsletter message, by the same parts: every header line comes from the
one header writer (`delivery.headers`), the body from the same MIME frame (multipart/
alternative, text/plain as quoted-printable first, text/html as base64 last, lines of at most
76 characters), and it is DKIM-signed when [dkim] is configured. Written in the subscriber's
language from web.po. Building never sends: the services put the bytes in the outbox.

`email.message.EmailMessage` is not used on purpose: its parser decodes an encoded word a
person typed (`=?utf-8?q?x=0D=0AReply-To:...?=` as a name) into a real CR/LF and writes it out
as new header lines and a new body.
"""

from __future__ import annotations

import os
import time
from email.utils import format_datetime
from typing import Any

from newsletter.config import Settings
from newsletter.db.models import utcnow
from newsletter.delivery.dkim import load_dkim
from newsletter.delivery.headers import AddressError, ascii_field, mailbox, unstructured
from newsletter.delivery.message import (
    Alternative,
    setting_address,
    setting_domain,
    setting_url,
)
from newsletter.errors import ValidationError
from newsletter.typography import typeset_text
from newsletter.web.pages import render, translator


class SystemMails:
    """Builds system mails from the organisation's settings; used by the opt-in services."""

    def __init__(self, settings: Settings) -> None:
        site = settings.newsletter
        self.settings = settings
        self.site_name = site.name
        self.logo_url = site.logo_url
        self.organisation = site.organisation
        self.postal_address = site.postal_address
        # Checked once, at start-up: a bad setting is a ConfigError naming it, never a header.
        self.sender = setting_address(settings, "newsletter", "from_address")
        self._from = mailbox("From", site.from_name or site.name, self.sender)
        self._reply_to = b""
        if site.reply_to:
            reply_to = setting_address(settings, "newsletter", "reply_to")
            self._reply_to = mailbox("Reply-To", "", reply_to)
        domain = setting_domain(settings, "message_id_domain")
        self.message_id_domain = domain or self.sender.rpartition("@")[2]
        self._dkim = load_dkim(settings)
        setting_url(settings)  # the welcome mail's List-Unsubscribe is built on it

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
        def text(section: str, key: str, language: str) -> str:
            """A name given per language in newsletter.toml, with the language's typography."""
            return typeset_text(self.settings.text(section, key, language), language)

        context = {
            "site_name": text("newsletter", "name", language),
            "logo_url": self.logo_url,
            "organisation": text("newsletter", "organisation", language),
            "postal_address": text("newsletter", "postal_address", language),
            "name": name,
            "subject": subject,
            **ctx,
        }
        lines = [
            self._from,
            self._to(name, to),
            unstructured("Subject", subject),
            ascii_field("Date", format_datetime(utcnow())),
            ascii_field("Message-ID", self._message_id(kind)),
            self._reply_to,
            ascii_field("Auto-Submitted", "auto-generated"),
            *(ascii_field(header, value) for header, value in (headers or {}).items()),
            unstructured("Content-Language", language),
        ]
        body = Alternative.new().body(
            render(f"mail/{kind}.txt", language, **context),
            render(f"mail/{kind}.html", language, **context),
        )
        message = b"".join(lines) + body
        if self._dkim is not None:
            message = self._dkim.sign(message) + message
        return message

    def _message_id(self, kind: str) -> str:
        # Shorter than make_msgid's, so the header stays on one 76-character line.
        return f"<{kind}.{int(time.time())}.{os.urandom(8).hex()}@{self.message_id_domain}>"

    @staticmethod
    def _to(name: str, address: str) -> bytes:
        try:
            return mailbox("To", name, address)
        except AddressError as exc:  # e.g. a non-ASCII local part: no SMTPUTF8 for bulk mail
            raise ValidationError(f"email: {exc}") from None

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

    def signature_verification(
        self, *, email: str, name: str, language: str, organisation: str, url: str, days: int
    ) -> bytes:
        """Ask a statement's signer to confirm the signature; the link expires after `days`."""
        _ = translator(language)
        subject = _("Please confirm the signature of %(organisation)s", organisation=organisation)
        return self._message("sign", email, name, language, subject,
                             organisation=organisation, url=url, days=days)
