"""The delivery queue: enqueue, claim with a lease, record intents and results, recover.

Crash safety: how "at most one copy, none silently skipped" is kept
=====================================================================

A delivery row (issue x subscriber, unique in the database) moves through these states::

    queued --claim--> queued + lease(worker, lease_until)
           --intent committed--> sending --reply committed--> sent | deferred | failed
    deferred (next_attempt_at due) --claim--> ... as queued
    sending  --sender died before the reply was recorded--> unknown

The rules that make a crash at *any* instant safe, SIGKILL included:

1. **Enqueue is one set-based statement** (INSERT ... SELECT) in the same transaction that
   moves the issue from draft to sending. Either every confirmed, non-suppressed subscriber has
   a row, or none does; a crash during enqueue leaves the issue in draft and the next run starts
   over. The unique (issue_id, subscriber_id) constraint means a later `--force` can only add
   rows for subscribers who have none, never a second row for someone already mailed.

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

Suppressions hold only HMAC hashes of addresses. The hash is computed inside SQL so that
enqueue stays one statement: SQLite gets a registered deterministic function, PostgreSQL builds
HMAC-SHA256 from its built-in sha256() with the padded keys passed as parameters. Rows whose
subscriber left or was suppressed after enqueue are marked `skipped` when claimed.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
from sqlalchemy.sql.elements import ColumnElement

from newsletter.audience.language import ListLanguages
from newsletter.db.engine import is_sqlite, make_engine
from newsletter.db.models import (
    utcnow,
)
from newsletter.db.tables import (
    DELIVERIES,
    EDITIONS,
    ISSUES,
    SUBSCRIBERS,
    SUBSCRIPTIONS,
    SUPPRESSIONS,
)
from newsletter.delivery.liveness import worker_alive
from newsletter.keyring import address_hash

OPEN = ("queued", "deferred")
UNKNOWN_REPLY = (
    "the sender stopped while this message was in flight: it may or may not have arrived"
)


# ---------------------------------------------------------------- engine and address hashing


def sender_engine(url: str, address_key: str) -> Engine:
    """An engine for the sender: SQLite gets BEGIN IMMEDIATE on demand and the hash function."""
    engine = make_engine(url)
    if is_sqlite(engine):
        from sqlalchemy import event

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            dbapi_conn.create_function(
                "nl_email_hash", 1, lambda e: address_hash(e, address_key), deterministic=True
            )

        def on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("immediate", False)
            if not immediate:
                conn.exec_driver_sql("BEGIN")
                return
            # SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries, and a worker
            # whose commit sleeps stalls all its connections (they await that commit before
            # DATA). Two workers then spend most of their time asleep. Retrying every 0.2 ms
            # ourselves takes the lock as soon as the other process lets go of it.
            raw = conn.connection.dbapi_connection
            assert raw is not None  # a connection that is beginning is open
            deadline = time.monotonic() + 30.0
            raw.execute("PRAGMA busy_timeout=0")
            try:
                while True:
                    try:
                        raw.execute("BEGIN IMMEDIATE")
                        return
                    except sqlite3.OperationalError as exc:
                        if "locked" not in str(exc) or time.monotonic() > deadline:
                            raise
                        time.sleep(0.0002)
            finally:
                raw.execute("PRAGMA busy_timeout=30000")

        event.listen(engine, "connect", on_connect)
        event.listen(engine, "begin", on_begin)
    return engine


def hash_expr(engine: Engine, email: Any, address_key: str) -> ColumnElement[Any]:
    """SQL computing keyring.address_hash(email, address_key) for the engine's dialect."""
    if is_sqlite(engine):
        return func.nl_email_hash(email)
    key = address_key.encode()
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    ikey = bytes(b ^ 0x36 for b in key)
    okey = bytes(b ^ 0x5C for b in key)
    inner = func.sha256(
        literal(ikey).op("||")(func.convert_to(func.lower(email), literal("UTF8")))
    )
    return func.encode(func.sha256(literal(okey).op("||")(inner)), literal("hex"))


def write_tx(engine: Engine) -> Any:
    """A transaction that takes SQLite's write lock at BEGIN, so claims never deadlock."""
    return engine.connect().execution_options(immediate=True)


# ---------------------------------------------------------------- audience and enqueue


@dataclass(frozen=True)
class IssueRow:
    id: int
    slug: str
    list_id: int
    status: str


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


def find_issue(conn: Connection, slug: str) -> IssueRow | None:
    row = conn.execute(
        select(ISSUES.c.id, ISSUES.c.slug, ISSUES.c.list_id, ISSUES.c.status).where(
            ISSUES.c.slug == slug
        )
    ).first()
    return IssueRow(*row) if row else None


def open_issue(conn: Connection, slug: str, list_id: int) -> IssueRow:
    """The issues row for a slug, created as a draft on first send."""
    found = find_issue(conn, slug)
    if found:
        return found
    conn.execute(
        insert(ISSUES).values(
            slug=slug, list_id=list_id, status="draft", created_at=utcnow(), data={}
        )
    )
    found = find_issue(conn, slug)
    assert found is not None  # just inserted in this transaction
    return found


def enqueue(
    conn: Connection,
    engine: Engine,
    *,
    issue_id: int,
    list_id: int,
    languages: ListLanguages,
    address_key: str,
    mapping: Mapping[str, str],
) -> int:
    """One INSERT ... SELECT: a queued delivery per recipient that has none for this issue."""
    sel = audience(engine, list_id, languages, address_key).subquery()
    language = case(dict(mapping), value=sel.c.lang, else_=sel.c.lang)
    now = utcnow()
    source = select(
        literal(issue_id),
        sel.c.id,
        literal(list_id),
        language,
        literal("queued"),
        literal(0),
        literal(now, type_=DELIVERIES.c.created_at.type),
    ).where(
        ~exists().where(DELIVERIES.c.issue_id == issue_id, DELIVERIES.c.subscriber_id == sel.c.id)
    )
    cols = ["issue_id", "subscriber_id", "list_id", "language", "status", "attempts", "created_at"]
    count = select(func.count()).where(DELIVERIES.c.issue_id == issue_id)
    before = conn.execute(count).scalar_one()
    conn.execute(insert(DELIVERIES).from_select(cols, source))
    return conn.execute(count).scalar_one() - before  # rowcount is -1 on some drivers


def set_issue_status(conn: Connection, issue_id: int, status: str) -> None:
    values: dict[str, Any] = {"status": status}
    now = utcnow()
    if status == "sending":
        started = literal(now, ISSUES.c.started_at.type)
        values["started_at"] = func.coalesce(ISSUES.c.started_at, started)
    if status == "sent":
        values["sent_at"] = now
    conn.execute(update(ISSUES).where(ISSUES.c.id == issue_id).values(**values))


# ---------------------------------------------------------------- editions


@dataclass(frozen=True)
class EditionRecord:
    """What the archive needs of one language as sent."""

    language: str
    subject: str
    title: str
    preheader: str
    issue_date: str
    volume: str
    number: str
    web_html: str
    text: str
    content_hash: str


def stored_hashes(conn: Connection, issue_id: int) -> dict[str, str]:
    q = select(EDITIONS.c.language, EDITIONS.c.content_hash).where(EDITIONS.c.issue_id == issue_id)
    return {lang: h for lang, h in conn.execute(q)}


def store_editions(conn: Connection, issue_id: int, editions: Iterable[EditionRecord]) -> None:
    """Insert or refresh the editions rows (sent_at is kept: it records the first send)."""
    existing = stored_hashes(conn, issue_id)
    for e in editions:
        values = {k: getattr(e, k) for k in EditionRecord.__dataclass_fields__}
        if e.language in existing:
            conn.execute(
                update(EDITIONS)
                .where(EDITIONS.c.issue_id == issue_id, EDITIONS.c.language == e.language)
                .values(values)
            )
        else:
            conn.execute(insert(EDITIONS).values(issue_id=issue_id, data={}, **values))


# ---------------------------------------------------------------- workers, leases, recovery


def recover(engine: Engine, issue_id: int, resend_unknown: bool = False) -> dict[str, int]:
    """Settle what a dead worker left: in-flight rows become unknown, its claims return."""
    now = utcnow()
    with write_tx(engine) as conn, conn.begin():
        workers = [
            w
            for (w,) in conn.execute(
                select(DELIVERIES.c.worker)
                .where(DELIVERIES.c.issue_id == issue_id, DELIVERIES.c.worker.is_not(None))
                .distinct()
            )
        ]
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


def claim(
    engine: Engine, issue_id: int, worker: str, limit: int, lease: float, address_key: str
) -> list[Claimed]:
    """Lease up to `limit` due rows to `worker`; rows whose subscriber left become skipped."""
    now = utcnow()
    due = (
        select(DELIVERIES.c.id)
        .where(
            DELIVERIES.c.issue_id == issue_id,
            DELIVERIES.c.status.in_(OPEN),
            or_(DELIVERIES.c.next_attempt_at.is_(None), DELIVERIES.c.next_attempt_at <= now),
            or_(DELIVERIES.c.lease_until.is_(None), DELIVERIES.c.lease_until < now),
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    with write_tx(engine) as conn, conn.begin():
        ids = [
            i
            for (i,) in conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id.in_(due.scalar_subquery()))
                .values(worker=worker, lease_until=now + timedelta(seconds=lease))
                .returning(DELIVERIES.c.id)
            )
        ]
        if not ids:
            return []
        rows = conn.execute(
            select(
                DELIVERIES.c.id,
                DELIVERIES.c.subscriber_id,
                SUBSCRIBERS.c.email,
                SUBSCRIBERS.c.name,
                SUBSCRIBERS.c.attributes,
                DELIVERIES.c.language,
                DELIVERIES.c.attempts,
                SUBSCRIPTIONS.c.status,
            )
            .select_from(
                DELIVERIES.join(
                    SUBSCRIBERS, SUBSCRIBERS.c.id == DELIVERIES.c.subscriber_id
                ).outerjoin(
                    SUBSCRIPTIONS,
                    and_(
                        SUBSCRIPTIONS.c.subscriber_id == DELIVERIES.c.subscriber_id,
                        SUBSCRIPTIONS.c.list_id == DELIVERIES.c.list_id,
                    ),
                )
            )
            .where(DELIVERIES.c.id.in_(ids))
            .order_by(DELIVERIES.c.id)
        ).all()
        hashes = {r.id: address_hash(r.email, address_key) for r in rows}
        suppressed = {
            h
            for (h,) in conn.execute(
                select(SUPPRESSIONS.c.email_hash).where(
                    SUPPRESSIONS.c.email_hash.in_(set(hashes.values()))
                )
            )
        }
        skip = {
            r.id: ("suppressed" if hashes[r.id] in suppressed else "no longer subscribed")
            for r in rows
            if hashes[r.id] in suppressed or r.status != "confirmed"
        }
        for reason in set(skip.values()):
            conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id.in_([i for i, w in skip.items() if w == reason]))
                .values(
                    status="skipped", worker=None, lease_until=None, last_reply=f"skipped: {reason}"
                )
            )
    return [
        Claimed(
            r.id, r.subscriber_id, r.email, r.name or "", r.attributes or {}, r.language, r.attempts
        )
        for r in rows
        if r.id not in skip
    ]


def renew(engine: Engine, worker: str, lease: float) -> None:
    """Extend every lease this worker holds, so a slow (rate-limited) batch is not stolen."""
    with write_tx(engine) as conn, conn.begin():
        conn.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.worker == worker)
            .values(lease_until=utcnow() + timedelta(seconds=lease))
        )


def next_due(engine: Engine, issue_id: int) -> datetime | None:
    """When the earliest deferred row of this issue is due, or None if none is left."""
    with engine.connect() as conn:
        return conn.execute(
            select(func.min(DELIVERIES.c.next_attempt_at)).where(
                DELIVERIES.c.issue_id == issue_id, DELIVERIES.c.status == "deferred"
            )
        ).scalar()


def remaining(engine: Engine, issue_id: int) -> int:
    """Rows not settled yet: queued, deferred or in flight."""
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(
                DELIVERIES.c.issue_id == issue_id, DELIVERIES.c.status.in_((*OPEN, "sending"))
            )
        ).scalar_one()


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
        conn.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id.in_(sent))
            .values(
                status="sent",
                sent_at=now,
                attempts=DELIVERIES.c.attempts + 1,
                worker=None,
                lease_until=None,
            )
        )
    rest = [o for o in outcomes if o.status != "sent"]
    if rest:
        stmt = (
            update(DELIVERIES)
            .where(DELIVERIES.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                last_reply=bindparam("b_reply"),
                next_attempt_at=bindparam("b_retry"),
                worker=None,
                lease_until=None,
                attempts=DELIVERIES.c.attempts + bindparam("b_inc"),
            )
        )
        conn.execute(
            stmt,
            [
                {
                    "b_id": o.delivery_id,
                    "b_status": o.status,
                    "b_reply": o.reply,
                    "b_retry": o.retry_at,
                    "b_inc": 0 if o.status == "queued" else 1,
                }
                for o in rest
            ],
        )
