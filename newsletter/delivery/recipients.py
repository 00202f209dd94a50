"""Who receives an issue: the confirmed, non-suppressed subscribers of its list, each with the
language they read it in, and which of them a send would mail now.

One SELECT serves the count the editor confirms, the set-based enqueue (delivery/queue.py) and
the dry run, so the three can never disagree about who is in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, exists, func, literal, or_, select

from newsletter.audience.language import ListLanguages
from newsletter.db.sender import hash_expr
from newsletter.db.tables import DELIVERIES, SUBSCRIBERS, SUBSCRIPTIONS, SUPPRESSIONS


def audience(engine: Engine, list_id: int, languages: ListLanguages, address_key: str) -> Any:
    """SELECT of the confirmed, non-suppressed subscribers of a list, each with the language
    they read it in (`lang`)."""
    lang = languages.effective_sql(SUBSCRIBERS.c.language).label("lang")
    email_hash = hash_expr(engine, SUBSCRIBERS.c.email, address_key)
    suppressed = exists().where(SUPPRESSIONS.c.email_hash == email_hash)
    return (
        select(
            SUBSCRIBERS.c.id,
            SUBSCRIBERS.c.email,
            SUBSCRIBERS.c.name,
            SUBSCRIBERS.c.attributes,
            lang,
        )
        .select_from(
            SUBSCRIPTIONS.join(SUBSCRIBERS, SUBSCRIBERS.c.id == SUBSCRIPTIONS.c.subscriber_id)
        )
        .where(
            SUBSCRIPTIONS.c.list_id == list_id, SUBSCRIPTIONS.c.status == "confirmed", ~suppressed
        )
    )


def count_by_language(
    engine: Engine, list_id: int, languages: ListLanguages, address_key: str,
    issue_id: int | None
) -> dict[str, int]:
    """Recipients per subscriber language; with issue_id, only those not enqueued yet."""
    sel = audience(engine, list_id, languages, address_key).subquery()
    q = select(sel.c.lang, func.count()).group_by(sel.c.lang)
    if issue_id is not None:
        q = q.where(
            ~exists().where(
                DELIVERIES.c.issue_id == issue_id, DELIVERIES.c.subscriber_id == sel.c.id
            )
        )
    with engine.connect() as conn:
        return {lang: n for lang, n in conn.execute(q)}


@dataclass(frozen=True)
class Pending:
    """Whom a send of an issue would mail: deliveries in `statuses` due by `due_by`, and, when
    `new`, the audience with no delivery yet."""

    issue_id: int
    new: bool
    statuses: tuple[str, ...]
    due_by: datetime


def stream_audience(
    engine: Engine,
    list_id: int,
    languages: ListLanguages,
    address_key: str,
    batch: int = 1000,
    pending: Pending | None = None,
) -> Iterator[Sequence[Any]]:
    """Yield the audience in batches (keyset pagination: constant memory at any list size);
    with `pending`, only the part of it that send would mail now."""
    base = audience(engine, list_id, languages, address_key).order_by(SUBSCRIBERS.c.id)
    if pending is not None:
        mine = (
            DELIVERIES.c.issue_id == pending.issue_id,
            DELIVERIES.c.subscriber_id == SUBSCRIBERS.c.id,
        )
        due = or_(
            DELIVERIES.c.next_attempt_at.is_(None),
            DELIVERIES.c.next_attempt_at
            <= literal(pending.due_by, DELIVERIES.c.next_attempt_at.type),
        )
        waiting = exists().where(*mine, DELIVERIES.c.status.in_(pending.statuses), due)
        base = base.where(or_(waiting, ~exists().where(*mine)) if pending.new else waiting)
    last = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(base.where(SUBSCRIBERS.c.id > last).limit(batch)).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id
