"""Sends that mail no subscriber: the dry run (every message built, none sent) and test copies.

Both build from the plan's compiled editions (dispatch.prepare_send), exactly as the workers
will build from the copies stored at enqueue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.db.models import utcnow
from newsletter.delivery.content import builders
from newsletter.delivery.dispatch import SendPlan, address_key
from newsletter.delivery.errors import SendError
from newsletter.delivery.pool import Build, Built
from newsletter.delivery.queue import OPEN, Claimed
from newsletter.delivery.recipients import Pending, stream_audience
from newsletter.delivery.relay import Relay
from newsletter.delivery.smtp import Unreachable, send_each


@dataclass(frozen=True)
class DryRunReport:
    """What a dry run built: messages and bytes per language."""

    messages: dict[str, int]
    total_bytes: int
    smallest: int
    largest: int


def _pending(settings: Settings, plan: SendPlan, resend_unknown: bool) -> Pending | None:
    """Whom the real send would mail: new recipients if it enqueues, plus the unsettled rows
    due within [smtp] retry_window (the run waits that long for retries, no longer)."""
    if plan.issue is None:
        return None
    statuses = (*OPEN, "unknown") if resend_unknown else OPEN
    due_by = utcnow() + timedelta(seconds=settings.smtp.retry_window)
    return Pending(plan.issue.id, plan.plan is not None, statuses, due_by)


def dry_run(
    settings: Settings, engine: Engine, plan: SendPlan, resend_unknown: bool = False
) -> DryRunReport:
    """Build every message the send would build, without SMTP and without writing anything.

    Only the recipients the real run would mail are counted: after a first send, `--force`
    adds those not mailed yet, and a resume mails the deliveries still waiting.
    """
    mapping = plan.plan.mapping if plan.plan else {}
    builds = builders(settings, plan.slug, plan.mailing_list, plan.compiled)
    messages: dict[str, int] = {}
    total, smallest, largest = 0, 0, 0
    ml = plan.mailing_list
    for rows in stream_audience(
        engine,
        ml.id,
        ml.reading,
        address_key(engine),
        pending=_pending(settings, plan, resend_unknown),
    ):
        for row in rows:
            lang = mapping.get(row.lang, row.lang)
            if lang not in builds:
                raise SendError(
                    f"no {lang} edition for subscriber language {row.lang}: pass "
                    f"--fallback-language"
                )
            claimed = Claimed(0, row.id, row.email, row.name or "", row.attributes or {}, lang, 0)
            size = len(_ready(builds[lang](claimed))[2])
            messages[lang] = messages.get(lang, 0) + 1
            total += size
            smallest = size if not smallest else min(smallest, size)
            largest = max(largest, size)
    return DryRunReport(messages=messages, total_bytes=total, smallest=smallest, largest=largest)


def _ready(built: Built) -> tuple[str, str, bytes]:
    """A message built here: signed in this process (only a send run has signer processes)."""
    mail_from, rcpt, data = built
    assert isinstance(data, bytes)
    return mail_from, rcpt, data


def send_tests(
    settings: Settings, engine: Engine, plan: SendPlan, addresses: Sequence[str]
) -> list[TestCopy]:
    """Real copies of every language to each address, subject prefixed ([send]
    test_subject_prefix) so nobody mistakes one for the real send; deliveries are not touched."""
    prefix = settings.send.test_subject_prefix
    builds = builders(settings, plan.slug, plan.mailing_list, plan.compiled, prefix)
    return asyncio.run(_send_tests(Relay.from_settings(settings), builds, addresses))


@dataclass(frozen=True)
class TestCopy:
    """What happened to one test copy: status as smtp.Result has it, and the server's reply."""

    to: str
    language: str
    status: str
    reply: str


async def _send_tests(
    relay: Relay, builds: Mapping[str, Build], addresses: Sequence[str]
) -> list[TestCopy]:
    copies = [(address, lang) for address in addresses for lang in builds]
    envelopes = [
        _ready(builds[lang](Claimed(0, 0, address, "", {}, lang, 0))) for address, lang in copies
    ]
    try:
        results = await send_each(relay, envelopes)
    except Unreachable as exc:
        raise SendError(
            f"cannot send test copies: the SMTP relay at {relay.describe()} {exc.reason}"
        ) from None
    return [
        TestCopy(address, lang, result.status, result.reply)
        for (address, lang), result in zip(copies, results, strict=True)
    ]
