"""What the workers build messages from: the issue's compiled editions and the sender identity
stored at enqueue (letterhead.py), read from the database once per run and turned into one
build function per language.

The workspace is not read here (except for an issue enqueued before the editions were stored,
see editions.compiled_editions), so a worker can run where the workspace is not.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

from newsletter.audience.lists import ListInfo
from newsletter.config import Settings
from newsletter.db.engine import make_engine
from newsletter.delivery import letterhead
from newsletter.delivery.editions import compiled_editions, stored_editions
from newsletter.delivery.issues import waiting_languages
from newsletter.delivery.pool import Build, Built
from newsletter.delivery.queue import Claimed
from newsletter.errors import NewsletterError
from newsletter.keyring import link_signer

if TYPE_CHECKING:
    from newsletter.compose import CompiledEdition
    from newsletter.delivery.signers import Signers


def issue_content(
    settings: Settings, issue_id: int, slug: str, mailing_list: ListInfo
) -> Mapping[str, Build]:
    """Per-language build functions from the editions and identity stored at enqueue."""
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            records = stored_editions(conn, issue_id)
            needed = waiting_languages(conn, issue_id)
            settings = letterhead.apply(settings, letterhead.stored(conn, issue_id))
    finally:
        engine.dispose()
    from newsletter.delivery import signers

    compiled = compiled_editions(settings, slug, records, needed)
    return builders(settings, slug, mailing_list, compiled, signers=signers.active())


def prepare(settings: Settings) -> None:
    """Load ahead what `builders` will need (a spawned worker does, waiting for its run): the
    message builder, the stored editions' class and the DKIM key (dkim.py keeps the parsed
    key). An unusable key is reported by the run, as without this."""
    from newsletter.compose.edition import CompiledEdition  # noqa: F401
    from newsletter.delivery.message import load_dkim

    with contextlib.suppress(NewsletterError):
        load_dkim(settings)


def builders(
    settings: Settings, slug: str, mailing_list: ListInfo,
    compiled: Mapping[str, CompiledEdition], subject_prefix: str = "",
    signers: Signers | None = None,
) -> dict[str, Build]:
    """One build function per language: a claimed delivery -> (envelope from, to, bytes); with
    `signers` (a send run's signer processes), the bytes come as an awaitable (signers.py)."""
    from newsletter.delivery.message import MessageBuilder, Recipient, load_dkim

    signer = link_signer(settings)
    dkim = load_dkim(settings)
    finish = None
    if signers is not None and dkim is not None:
        dkim, finish = signers.remote(dkim)
    builds: dict[str, Build] = {}
    for lang, edition in compiled.items():
        if subject_prefix:
            edition = dataclasses.replace(edition, subject=subject_prefix + edition.subject)
        builder = MessageBuilder(
            settings=settings,
            edition=edition,
            issue_slug=slug,
            list_id=mailing_list.id,
            list_slug=mailing_list.slug,
            list_name=mailing_list.name,
            signer=signer,
            dkim=dkim,
        )

        def build(c: Claimed, builder: MessageBuilder = builder) -> Built:
            # the address is checked before the message is signed: nothing fails in between
            mail_from, rcpt, data = builder.envelope_and_message(
                Recipient(
                    delivery_id=c.delivery_id,
                    subscriber_id=c.subscriber_id,
                    email=c.email,
                    name=c.name,
                    attributes=c.attributes,
                )
            )
            return mail_from, rcpt, finish(data) if finish else data

        builds[lang] = build
    return builds
