"""The delivery queue: enqueue, claim with a lease, record intents and results, recover.

Crash safety: how "at most one copy, none silently skipped" is kept
=====================================================================

A delivery row (issue x subscriber, unique in the database) moves through these states::

    queued --claim--> queued + lease(worker, lease_until)
           --intent committed--> sending --reply committed--> sent | deferred | failed
    deferred (next_attempt_at due) --claim--> ... as queued
    sending  --sender died before the reply was recorded--> unknown

The rules that make a crash at *any* instant safe, SIGKILL included:

1. **Enqueue is set-based, in chunks, and idempotent.** Each chunk is one INSERT ... SELECT of
   the next recipients in subscriber order that have no row for the issue yet. The first
   commits in the transaction that moves the issue from draft to sending, and the workers start
   on it while the others are added (dispatch.begin_send, deliver). `issues.enqueuing` stays
   true until the chunk that finds nobody left, and nobody sets the issue sent while it is: a
   crash between two chunks leaves the issue sending (or paused) with part of its rows, and
   the next `newsletter send` adds the rest, planned as before. The unique (issue_id,
   subscriber_id) constraint means that, or a later `--force`, can only add rows for
   subscribers who have none, never a second row for someone already mailed.

2. **Claiming is not sending.** A worker claims a batch by stamping `worker` and `lease_until`
   on queued rows (PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` so concurrent workers on
   many hosts take disjoint batches; SQLite: a ``BEGIN IMMEDIATE`` transaction so the claim is
   serialised). The status stays `queued`. If the worker dies, nothing about those rows says
   "sent": they return to the queue when the lease expires, or at once when the next run sees
   that the owning process on this host is gone. Nobody is skipped.

   This is the difference from listmonk, which advances its per-campaign checkpoint
   (the last subscriber id) when it *fetches* a batch, before the messages go out; if the
   process dies, the recipients of the fetched-but-unsent batch lie behind the checkpoint and
   are never mailed. Here progress is recorded per row, only after the fact it describes.

3. **Write-ahead intent.** Before a message's DATA command, its row must be *durably* marked
   `sending` (committed). After the server's reply, the outcome is committed. A connection
   sends one message at a time, and commits the previous message's outcome no later than the
   next message's intent (same group commit, in order). So at any instant each SMTP connection
   has at most one row in `sending`, and the only rows whose fate is unknown after a crash are
   those: at most `connections x workers`. The next run turns them into `unknown`; `issue
   status` reports them and `send --resend-unknown` is the editor's explicit choice to mail them
   again (a possible second copy, never a silent one).

4. **Group commit keeps this fast.** One journal task per process gathers the intents and
   results of all its connections and commits them together, in one transaction, as soon as
   the previous commit finishes. A connection submits its intent, runs MAIL FROM and RCPT TO
   while the commit is under way, and awaits the commit before DATA. The price of durability
   is a few milliseconds of latency per message, hidden behind the pool, not a transaction
   per message.

5. **Lost claims are detected, not trusted.** The intent UPDATE only matches rows still leased
   to this worker and still queued/deferred (RETURNING the ids it changed); if a lease expired
   and another worker took the row, the intent comes back empty and the message is not sent.

Durability note: SQLite runs in WAL mode with synchronous=NORMAL, so a committed transaction
survives a crash of the process (the case tested here) but the last few may be lost at a power
failure; PostgreSQL with its defaults survives both.

Suppressions hold only HMAC hashes of addresses. The hash is computed inside SQL
(db/sender.py) so that enqueue stays one statement over the audience (delivery/recipients.py).
Rows whose subscriber left or was suppressed after enqueue are marked `skipped` when claimed.
The issue's own states live in delivery/issues.py, its compiled editions in editions.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from newsletter.audience.language import ListLanguages
from newsletter.db import pgsend
from newsletter.db.engine import is_sqlite
from newsletter.db.models import utcnow
from newsletter.db.sender import write_tx
from newsletter.db.tables import (
    DELIVERIES,
    EDITIONS,
    ISSUES,
    SUBSCRIBERS,
    SUBSCRIPTIONS,
    SUPPRESSIONS,
)
from newsletter.delivery.liveness import worker_alive
from newsletter.delivery.recipients import audience
from newsletter.keyring import address_hash

OPEN = ("queued", "deferred")
ENQUEUE_POLL = 0.05  # s between a run's looks for rows while the enqueue adds them
UNKNOWN_REPLY = (
    "the sender stopped while this message was in flight: it may or may not have arrived"
)


# ---------------------------------------------------------------- enqueue


def _recipients(engine: Engine, issue_id: int, list_id: int, languages: ListLanguages,
                address_key: str, mapping: Mapping[str, str]) -> tuple[Any, Any]:
    """The audience with no delivery for this issue yet, as the rows to insert (in subscriber
    order), and its subscriber id column for a chunk's bounds."""
    sel = audience(engine, list_id, languages, address_key).subquery()
    language = case(dict(mapping), value=sel.c.lang, else_=sel.c.lang)
    source = select(
        literal(issue_id),
        sel.c.id,
        literal(list_id),
        language,
        literal("queued"),
        literal(0),
        literal(utcnow(), type_=DELIVERIES.c.created_at.type),
    ).where(
        ~exists().where(DELIVERIES.c.issue_id == issue_id, DELIVERIES.c.subscriber_id == sel.c.id)
    ).order_by(sel.c.id)  # deliveries take ids in subscriber order, whatever the join's plan
    return source, sel.c.id


ENQUEUED = ["issue_id", "subscriber_id", "list_id", "language", "status", "attempts",
            "created_at"]


def enqueue(conn: Connection, engine: Engine, **recipients: Any) -> int:
    """A queued delivery per recipient that has none for this issue, in one INSERT ... SELECT
    -> rows added. Takes `enqueue_chunk`'s keywords but `after` and `limit`."""
    return enqueue_chunk(conn, engine, **recipients)[0]


def enqueue_chunk(
    conn: Connection,
    engine: Engine,
    *,
    issue_id: int,
    list_id: int,
    languages: ListLanguages,
    address_key: str,
    mapping: Mapping[str, str],
    after: int = 0,
    limit: int | None = None,
) -> tuple[int, int]:
    """The next `limit` recipients (all when None) in subscriber order, above subscriber
    `after`, queued -> (rows added, the last subscriber id added; `after` when none). Fewer
    than `limit`: nobody is left."""
    source, ids = _recipients(engine, issue_id, list_id, languages, address_key, mapping)
    added = conn.execute(insert(DELIVERIES).from_select(
        ENQUEUED, source.where(ids > after).limit(limit)).returning(
        DELIVERIES.c.subscriber_id)).scalars().all()
    return len(added), max(added, default=after)


def set_enqueuing(conn: Connection, issue_id: int, on: bool) -> None:
    """Mark the issue's enqueue under way (on) or complete: only then may it be set sent."""
    conn.execute(update(ISSUES).where(ISSUES.c.id == issue_id).values(enqueuing=on))


def enqueuing(conn: Connection, issue_id: int) -> bool:
    """Whether an enqueue of the issue is still under way (or stopped before its end)."""
    return bool(conn.scalar(select(ISSUES.c.enqueuing).where(ISSUES.c.id == issue_id)))


def lock_issue(conn: Connection, issue_id: int) -> str | None:
    """The issue's status, its row locked until the transaction ends (PostgreSQL): a cancel
    waits for the chunk being added, so that it sees, and skips, its rows."""
    return conn.scalar(select(ISSUES.c.status).where(ISSUES.c.id == issue_id)
                       .with_for_update(key_share=True))


# ---------------------------------------------------------------- workers, leases, recovery


def recover(engine: Engine, issue_id: int, resend_unknown: bool = False) -> dict[str, int]:
    """Settle what a dead worker left: in-flight rows become unknown, its claims return."""
    now = utcnow()
    with write_tx(engine) as conn, conn.begin():
        workers = conn.execute(
            select(DELIVERIES.c.worker)
            .where(DELIVERIES.c.issue_id == issue_id, DELIVERIES.c.worker.is_not(None))
            .distinct()
        ).scalars().all()
        dead = [w for w in workers if not worker_alive(w)]
        gone = or_(DELIVERIES.c.worker.in_(dead), DELIVERIES.c.lease_until < now)
        unknown = conn.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.issue_id == issue_id, DELIVERIES.c.status == "sending", gone)
            .values(status="unknown", worker=None, lease_until=None, last_reply=UNKNOWN_REPLY)
        ).rowcount
        released = conn.execute(
            update(DELIVERIES)
            .where(
                DELIVERIES.c.issue_id == issue_id,
                DELIVERIES.c.status.in_(OPEN),
                DELIVERIES.c.worker.is_not(None),
                gone,
            )
            .values(worker=None, lease_until=None)
        ).rowcount
        requeued = 0
        if resend_unknown:
            requeued = conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.issue_id == issue_id, DELIVERIES.c.status == "unknown")
                .values(status="queued", next_attempt_at=None)
            ).rowcount
    return {"unknown": unknown, "released": released, "requeued": requeued}


@dataclass(frozen=True)
class Claimed:
    """One claimed delivery with what the message builder needs; plain data."""

    delivery_id: int
    subscriber_id: int
    email: str
    name: str
    attributes: dict[str, Any]
    language: str
    attempts: int


def _claimable(issue_id: int, now: datetime) -> tuple[tuple[Any, ...], ...]:
    """The rows a claim may take now, waiting, due and leased to nobody (or the lease ran out),
    as three sets: deferred rows whose time came (or that have none), then queued ones. Each
    is one range of ix_deliveries_claim; written as one OR, PostgreSQL filtered every deferred
    row not yet due (bench/RESULTS.md: 41-106 ms a claim with 300,000 of them, 5 ms now)."""
    d = DELIVERIES.c
    free = or_(d.lease_until.is_(None), d.lease_until < now)
    return (
        (d.issue_id == issue_id, d.status == "deferred", d.next_attempt_at <= now, free),
        (d.issue_id == issue_id, d.status == "deferred", d.next_attempt_at.is_(None), free),
        (d.issue_id == issue_id, d.status == "queued",
         or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now), free),
    )


def claimable(engine: Engine, issue_id: int) -> bool:
    """Whether a claim would take a row of this issue now (the long-running worker asks
    before it starts a run on the issue)."""
    with engine.connect() as conn:
        return any(
            conn.execute(select(DELIVERIES.c.id).where(*where).limit(1)).first() is not None
            for where in _claimable(issue_id, utcnow()))


def _lease(conn: Connection, issue_id: int, worker: str, limit: int, until: datetime,
           now: datetime) -> list[int]:
    """Stamp up to `limit` claimable rows with this worker's lease: their ids."""
    ids: list[int] = []
    for where in _claimable(issue_id, now):
        if len(ids) >= limit:
            break
        due = (select(DELIVERIES.c.id).where(*where).limit(limit - len(ids))
               .with_for_update(skip_locked=True))
        ids += conn.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id.in_(due.scalar_subquery()))
            .values(worker=worker, lease_until=until)
            .returning(DELIVERIES.c.id)
        ).scalars()
    return ids


def claim(
    engine: Engine, issue_id: int, worker: str, limit: int, lease: float, address_key: str
) -> list[Claimed]:
    """Lease up to `limit` due rows to `worker`; rows whose subscriber left become skipped."""
    now = utcnow()
    with write_tx(engine) as conn, conn.begin():
        ids = _lease(conn, issue_id, worker, limit, now + timedelta(seconds=lease), now)
        if not ids:
            return []
        sqlite = is_sqlite(engine)
        rows = _leased_rows_sqlite(conn, ids) if sqlite else conn.execute(
            select(DELIVERIES.c.id, DELIVERIES.c.subscriber_id, SUBSCRIBERS.c.email,
                   SUBSCRIBERS.c.name, SUBSCRIBERS.c.attributes, DELIVERIES.c.language,
                   DELIVERIES.c.attempts, SUBSCRIPTIONS.c.status)
            .select_from(DELIVERIES.join(
                SUBSCRIBERS, SUBSCRIBERS.c.id == DELIVERIES.c.subscriber_id).outerjoin(
                SUBSCRIPTIONS, and_(SUBSCRIPTIONS.c.subscriber_id == DELIVERIES.c.subscriber_id,
                                    SUBSCRIPTIONS.c.list_id == DELIVERIES.c.list_id)))
            .where(DELIVERIES.c.id.in_(ids))
            .order_by(DELIVERIES.c.id)
        ).all()
        hashes = [address_hash(row[2], address_key) for row in rows]
        if sqlite:
            found = conn.exec_driver_sql(SQLITE_SUPPRESSED, (json.dumps(hashes),))
        else:
            found = conn.execute(select(SUPPRESSIONS.c.email_hash).where(
                SUPPRESSIONS.c.email_hash.in_(set(hashes))))
        suppressed = {h for (h,) in found}
        claimed, skip = _triage([(*row, h in suppressed) for row, h in zip(rows, hashes,
                                                                            strict=True)])
        for reason, ids in skip.items():
            conn.execute(update(DELIVERIES).where(DELIVERIES.c.id.in_(ids)).values(
                status="skipped", worker=None, lease_until=None, last_reply=f"skipped: {reason}"))
    return claimed


# What a claim reads of its leased rows on SQLite, as driver statements with each id list as
# one JSON parameter: SQLAlchemy's IN lists of 500 parameters, its row processing and its JSON
# decoding of every subscriber's attributes were about half of a claim's CPU.
SQLITE_LEASED = (
    "SELECT d.id, d.subscriber_id, s.email, s.name, s.attributes, d.language, d.attempts, "
    "sub.status FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
    "LEFT OUTER JOIN subscriptions sub ON sub.subscriber_id = d.subscriber_id "
    "AND sub.list_id = d.list_id WHERE d.id IN (SELECT value FROM json_each(?)) ORDER BY d.id")
SQLITE_SUPPRESSED = ("SELECT email_hash FROM suppressions "
                     "WHERE email_hash IN (SELECT value FROM json_each(?))")


def _leased_rows_sqlite(conn: Connection, ids: list[int]) -> list[tuple[Any, ...]]:
    """The claim's rows on SQLite; attributes decoded only when there are any."""
    rows = conn.exec_driver_sql(SQLITE_LEASED, (json.dumps(ids),)).all()
    return [(i, sub, email, name, {} if attributes == "{}" or attributes is None
             else json.loads(attributes), language, attempts, status)
            for i, sub, email, name, attributes, language, attempts, status in rows]


async def claim_fast(lane: pgsend.Lane, issue_id: int, worker: str, limit: int, lease: float,
                     address_key: str) -> list[Claimed]:
    """`claim` on PostgreSQL's fast path (db/pgsend.py): one statement on the event loop."""
    now = utcnow()
    rows = await pgsend.claim(lane, issue_id=issue_id, worker=worker, limit=limit, now=now,
                              until=now + timedelta(seconds=lease), address_key=address_key)
    claimed, skip = _triage(rows)
    for reason, ids in skip.items():
        await pgsend.skip(lane, ids, f"skipped: {reason}", worker)
    return claimed


def _triage(rows: Iterable[Sequence[Any]]) -> tuple[list[Claimed], dict[str, list[int]]]:
    """Claimed rows (id, subscriber, email, name, attributes, language, attempts, subscription
    status, suppressed) -> the deliveries to send, and the ids to skip by reason."""
    claimed: list[Claimed] = []
    skip: dict[str, list[int]] = {}
    for i, sub, email, name, attributes, language, attempts, status, suppressed in rows:
        if suppressed or status != "confirmed":
            skip.setdefault("suppressed" if suppressed else "no longer subscribed", []).append(i)
        else:
            claimed.append(Claimed(i, sub, email, name or "", attributes or {}, language,
                                   attempts))
    return claimed, skip


def renew(engine: Engine, worker: str, lease: float) -> None:
    """Extend every lease this worker holds, so a slow (rate-limited) batch is not stolen."""
    with write_tx(engine) as conn, conn.begin():
        conn.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.worker == worker)
            .values(lease_until=utcnow() + timedelta(seconds=lease))
        )


def next_due(engine: Engine, issue_id: int) -> datetime | None:
    """When a run with nothing to claim should look again: soon while an enqueue is still
    adding the issue's rows, now when rows became claimable since its claim came back empty
    (a chunk committed meanwhile), else when the earliest deferred row is due; None: nothing
    is left."""
    with engine.connect() as conn:
        if enqueuing(conn, issue_id):
            return utcnow() + timedelta(seconds=ENQUEUE_POLL)
    if claimable(engine, issue_id):
        return utcnow()
    with engine.connect() as conn:
        return conn.execute(
            select(func.min(DELIVERIES.c.next_attempt_at)).where(
                DELIVERIES.c.issue_id == issue_id, DELIVERIES.c.status == "deferred"
            )
        ).scalar()


# ---------------------------------------------------------------- recording (group commit)


@dataclass(frozen=True)
class Outcome:
    """What happened to one delivery: sent, deferred, failed, or requeued (retry at once)."""

    delivery_id: int
    status: str
    reply: str | None = None
    language: str = ""
    retry_at: datetime | None = None


def commit_journal(
    engine: Engine,
    *,
    issue_id: int,
    worker: str,
    intents: Sequence[int],
    outcomes: Sequence[Outcome],
    released: Sequence[int] = (),
    sent_languages: Iterable[str] = (),
) -> set[int]:
    """One transaction: outcomes first, then intents; returns the intents still ours.

    Outcomes are written before intents so that, per connection, the previous message's fate
    is durable no later than the next message's `sending` mark.
    """
    now = utcnow()
    with write_tx(engine) as conn, conn.begin():
        _write_outcomes(conn, outcomes, now)
        if released:
            conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id.in_(list(released)), DELIVERIES.c.worker == worker)
                .values(worker=None, lease_until=None)
            )
        for lang in sent_languages:
            conn.execute(
                update(EDITIONS)
                .where(
                    EDITIONS.c.issue_id == issue_id,
                    EDITIONS.c.language == lang,
                    EDITIONS.c.sent_at.is_(None),
                )
                .values(sent_at=now)
            )
        if not intents:
            return set()
        return {
            i
            for (i,) in conn.execute(
                update(DELIVERIES)
                .where(
                    DELIVERIES.c.id.in_(list(intents)),
                    DELIVERIES.c.worker == worker,
                    DELIVERIES.c.status.in_(OPEN),
                )
                .values(status="sending")
                .returning(DELIVERIES.c.id)
            )
        }


def _write_outcomes(conn: Connection, outcomes: Sequence[Outcome], now: datetime) -> None:
    sent = [o.delivery_id for o in outcomes if o.status == "sent"]
    if sent:
        conn.execute(update(DELIVERIES).where(DELIVERIES.c.id.in_(sent)).values(
            status="sent", sent_at=now, attempts=DELIVERIES.c.attempts + 1, worker=None,
            lease_until=None))
    rest = [o for o in outcomes if o.status != "sent"]
    if rest:
        stmt = update(DELIVERIES).where(DELIVERIES.c.id == bindparam("b_id")).values(
            status=bindparam("b_status"), last_reply=bindparam("b_reply"),
            next_attempt_at=bindparam("b_retry"), worker=None, lease_until=None,
            attempts=DELIVERIES.c.attempts + bindparam("b_inc"))
        conn.execute(stmt, [{"b_id": o.delivery_id, "b_status": o.status, "b_reply": o.reply,
                             "b_retry": o.retry_at, "b_inc": 0 if o.status == "queued" else 1}
                            for o in rest])
