"""The sender's fast path on PostgreSQL: claims and journal commits as plain psycopg statements
on the event loop (no SQLAlchemy, no thread).

Each is **one statement in autocommit**, so it is its own transaction: one round trip where
BEGIN, the statements and COMMIT took four to seven, and the reply comes back only once the
commit is durable (synchronous_commit stays on: a row is `sending` on disk before its DATA).
Each is prepared on the server at its first run, with one generic plan kept for good
(`plan_cache_mode`): left to choose, the server planned the journal's statement again at every
run, a quarter of its CPU for a commit. The statements do what delivery/queue.py's
`claim` and `commit_journal` do through SQLAlchemy (the protocol is explained there);
tests/delivery/test_pgsend.py and the journal's tests read their rows back on PostgreSQL.

- `CLAIM`: the three ranges of `queue._claimable` (due deferred rows, deferred rows with no
  time, queued rows), each a `FOR UPDATE SKIP LOCKED` CTE, read in that order up to the limit
  (a CTE runs only as far as it is read), leased, and returned with what the message builder
  needs, the subscription's status and whether the address is suppressed (its HMAC computed
  in SQL, as `sender.hash_expr` does for the enqueue).
- The journal (`journal_sql`): the `sent` outcomes by id (`SENT`), the others from arrays
  (`OTHER`, `unnest`), the released claims, the editions' first send, then the intents, whose
  ids it returns; a commit runs only the parts it has rows for (each combination is its own
  prepared statement). The common ones (no deferral, failure or first send of an edition)
  skip psycopg's cursor: `run` sends them on libpq, their parameters written as text. The
  parts of one query see one snapshot, so `journal` keeps an id to the first of these that
  names it, as the sequential writers' `worker = me` conditions do.

psycopg is imported when a connection opens, not with this module: runner, queue and journal
import it on SQLite too, where psycopg's ~0.13 s of imports were paid by the send and by each
spawned worker for nothing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from newsletter.db.sender import hmac_pads

_RANGE = ("SELECT id FROM deliveries WHERE issue_id = %(issue)s AND status = {status} AND {due} "
          "AND (lease_until IS NULL OR lease_until < %(now)s) LIMIT %(limit)s "
          "FOR UPDATE SKIP LOCKED")

CLAIM = f"""
WITH r1 AS ({_RANGE.format(status="'deferred'", due="next_attempt_at <= %(now)s")}),
r2 AS ({_RANGE.format(status="'deferred'", due="next_attempt_at IS NULL")}),
r3 AS ({_RANGE.format(status="'queued'",
                      due="(next_attempt_at IS NULL OR next_attempt_at <= %(now)s)")}),
pick AS (SELECT id FROM r1 UNION ALL SELECT id FROM r2 UNION ALL SELECT id FROM r3
         LIMIT %(limit)s),
leased AS (
    UPDATE deliveries SET worker = %(worker)s, lease_until = %(until)s
    WHERE id = ANY(ARRAY(SELECT id FROM pick))
    RETURNING id, subscriber_id, list_id, language, attempts)
SELECT l.id, l.subscriber_id, s.email, s.name, s.attributes, l.language, l.attempts, m.status,
    EXISTS (SELECT 1 FROM suppressions x WHERE x.email_hash = encode(sha256(%(okey)s ||
        sha256(%(ikey)s || convert_to(lower(s.email), 'UTF8'))), 'hex')) AS suppressed
FROM leased l JOIN subscribers s ON s.id = l.subscriber_id
LEFT JOIN subscriptions m ON m.subscriber_id = l.subscriber_id AND m.list_id = l.list_id
ORDER BY l.id
"""

SKIP = ("UPDATE deliveries SET status = 'skipped', worker = NULL, lease_until = NULL, "
        "last_reply = %s WHERE id = ANY(%s::int[]) AND worker = %s")

# The journal's parts; a commit runs those it has something for (db/pgsend.journal_sql).
SENT = """sent AS (
    UPDATE deliveries SET status = 'sent', sent_at = %(now)s, attempts = attempts + 1,
        worker = NULL, lease_until = NULL
    WHERE id = ANY(%(sent)s::int[]) RETURNING id)"""
OTHER = """other AS (
    UPDATE deliveries d SET status = o.status, last_reply = o.reply, next_attempt_at = o.retry,
        attempts = d.attempts + o.inc, worker = NULL, lease_until = NULL
    FROM unnest(%(ids)s::int[], %(statuses)s::text[], %(replies)s::text[],
                %(retries)s::timestamp[], %(incs)s::int[]) AS o(id, status, reply, retry, inc)
    WHERE d.id = o.id AND d.id = ANY(%(ids)s::int[])
    RETURNING d.id)"""
RELEASED = """released AS (
    UPDATE deliveries SET worker = NULL, lease_until = NULL
    WHERE id = ANY(%(released)s::int[]) AND worker = %(worker)s RETURNING id)"""
EDITION = """edition AS (
    UPDATE editions SET sent_at = %(now)s WHERE issue_id = %(issue)s
    AND language = ANY(%(languages)s::text[]) AND sent_at IS NULL RETURNING id)"""
# The status is checked as an expression (`|| ''`) so that the only index this can use is the
# primary key: planned while the table is small (the send starts on the enqueue's first chunk),
# `status IN` took the claim index and read every queued row of the issue at every commit.
INTENT = """UPDATE deliveries SET status = 'sending'
WHERE id = ANY(%(intents)s::int[]) AND worker = %(worker)s
AND (status || '') IN ('queued', 'deferred')
RETURNING id"""
NO_INTENT = "SELECT NULL::int WHERE false"


def journal_sql(parts: Sequence[str], intents: bool) -> str:
    """One commit's statement: the CTEs it needs, then the intents (or an empty result)."""
    main = INTENT if intents else NO_INTENT
    return f"WITH {', '.join(parts)}\n{main}" if parts else main



def naive_utc(value: datetime) -> datetime:
    """What the models store in PostgreSQL's timestamp columns: UTC without a zone."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def conninfo(engine: Engine) -> str | None:
    """The engine's database for psycopg, if the fast path serves it (PostgreSQL, psycopg 3)."""
    url = engine.url
    if url.drivername != "postgresql+psycopg":
        return None
    return url.set(drivername="postgresql").render_as_string(False)


class Lane:
    """One psycopg asyncio connection in autocommit, opened on first use and again after it
    closed; used by one task at a time (the feeder's claims, or the journal's commits)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.conn: Any = None
        # `run`'s statements prepared on this connection: their names and parameters' keys
        self.prepared: dict[str, tuple[bytes, list[str]]] = {}

    async def connection(self) -> Any:
        if self.conn is None or self.conn.closed:
            import psycopg

            self.conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
            self.prepared = {}
            # The statements' plans do not depend on their values (the ids are looked up by
            # primary key, the claim's ranges by the claim index): plan each once, not at every
            # run (the planner's guess of the arrays' sizes made it re-plan every time).
            await self.conn.execute("SET plan_cache_mode = force_generic_plan")
            # And by those indexes whatever the table's size when the plan is made: the send
            # starts on the enqueue's first chunk, and a plan made on 1,000 rows scanned the
            # whole table at every commit once it held 50,000 (a third of a core).
            await self.conn.execute("SET enable_seqscan = off")
        return self.conn

    def close(self) -> None:
        if self.conn is not None and not self.conn.closed:
            self.conn.pgconn.finish()  # the loop may be closing: no await here


async def claim(lane: Lane, *, issue_id: int, worker: str, limit: int, now: datetime,
                until: datetime, address_key: str) -> list[tuple[Any, ...]]:
    """Lease up to `limit` claimable rows: (id, subscriber_id, email, name, attributes,
    language, attempts, subscription status, suppressed) for each, by id."""
    ikey, okey = hmac_pads(address_key)
    conn = await lane.connection()
    cur = await conn.execute(CLAIM, {
        "issue": issue_id, "worker": worker, "limit": limit, "now": naive_utc(now),
        "until": naive_utc(until), "ikey": ikey, "okey": okey}, prepare=True)
    return list(await cur.fetchall())


async def skip(lane: Lane, ids: Sequence[int], reply: str, worker: str) -> None:
    """Mark claimed rows `skipped` with `reply` (their subscriber left or is suppressed)."""
    conn = await lane.connection()
    await conn.execute(SKIP, (reply, list(ids), worker))


async def journal(lane: Lane, *, issue_id: int, worker: str, intents: Sequence[int],
                  outcomes: Sequence[tuple[int, str, str | None, datetime | None, int]],
                  released: Sequence[int], languages: Sequence[str],
                  now: datetime, granted: Callable[[set[int]], None] | None = None) -> set[int]:
    """One commit of the journal: outcomes are (id, status, reply, retry time, attempts to
    add; a `sent` adds one); returns the intents still this worker's. `granted` hears them as
    soon as the reply is read, on the common path (see `run`)."""
    settled = {o[0] for o in outcomes}
    released = [i for i in released if i not in settled]
    taken = settled.union(released)
    intents = [i for i in intents if i not in taken]
    sent = [o[0] for o in outcomes if o[1] == "sent"]
    others = [o for o in outcomes if o[1] != "sent"]
    params: dict[str, Any] = {"worker": worker, "now": naive_utc(now)}
    parts = []
    if sent:
        parts.append(SENT)
        params["sent"] = sent
    if others:
        parts.append(OTHER)
        params.update(ids=[o[0] for o in others], statuses=[o[1] for o in others],
                      replies=[o[2] for o in others], incs=[o[4] for o in others],
                      retries=[o[3] and naive_utc(o[3]) for o in others])
    if released:
        parts.append(RELEASED)
        params["released"] = released
    if languages:
        parts.append(EDITION)
        params.update(issue=issue_id, languages=list(languages))
    params["intents"] = intents
    if others or languages:  # rare: deferrals, failures, an edition's first send
        conn = await lane.connection()
        cur = await conn.execute(journal_sql(parts, bool(intents)), params, prepare=True)
        return {i for (i,) in await cur.fetchall()}
    hear = None if granted is None else (lambda ids: granted(set(ids)))
    return set(await run(lane, journal_sql(parts, bool(intents)), params, hear))


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _text(value: Any) -> bytes:
    """A parameter in PostgreSQL's text format: ids (arrays of them), a name or a time."""
    if isinstance(value, list):
        return ("{" + ",".join(map(str, value)) + "}").encode()
    if isinstance(value, datetime):
        return value.isoformat(" ").encode()
    return str(value).encode()


async def run(lane: Lane, sql: str, params: dict[str, Any],
              early: Callable[[list[int]], None] | None = None) -> list[int]:
    """A statement returning one integer column, run on libpq directly: prepared once per
    connection, its parameters written as text (ids, arrays of ids, names, times). `early`
    hears the ids in the socket's reader callback, a turn of the event loop before this
    coroutine's task resumes.

    The journal's commits go this way: through psycopg's cursor (a cursor, a transformer
    and its dumpers per call) a commit of 8 outcomes and 8 intents, run alone in a loop, took
    0.30-0.44 ms of CPU, here 0.26-0.29 ms; that CPU is the event loop's, which every
    connection waits on. And a connection waits for its intent's commit before each DATA:
    granting the intents from the reader callback, one hop sooner, made a send of 50,000 on
    PostgreSQL with 16 connections about 4 % faster (4 runs each, alternated)."""
    conn = await lane.connection()
    prepared = lane.prepared.get(sql)
    if prepared is None:
        keys = list(dict.fromkeys(_PLACEHOLDER.findall(sql)))
        prepared = b"nl_%d" % len(lane.prepared), keys
        numbered = _PLACEHOLDER.sub(lambda m: f"${keys.index(m[1]) + 1}", sql)
        conn.pgconn.send_prepare(prepared[0], numbered.encode())
        await _reply(conn)
        lane.prepared[sql] = prepared
    name, keys = prepared
    conn.pgconn.send_query_prepared(name, [_text(params[k]) for k in keys])
    ids: list[int] = []

    def take(result: Any) -> None:
        ids.extend(int(result.get_value(i, 0)) for i in range(result.ntuples))
        if early is not None:
            early(ids)

    await _reply(conn, take)
    return ids


async def _reply(conn: Any, take: Callable[[Any], None] | None = None) -> None:
    """Wait for the reply to the statement sent, reading it in the socket's reader callback;
    `take` gets its last result there (not on an error: its error is raised here, as psycopg
    raises it). Only libpq's documented calls (`psycopg.pq`): flush, consume_input, is_busy,
    get_result."""
    from psycopg import errors, pq  # loaded by Lane.connection already

    pgconn, loop = conn.pgconn, asyncio.get_running_loop()
    fd = pgconn.socket
    while pgconn.flush():  # the statement is larger than the socket's buffer
        await _ready(loop, fd)
        pgconn.consume_input()  # the server may be talking meanwhile: libpq reads, or it stalls
    done: asyncio.Future[None] = loop.create_future()
    results: list[Any] = []

    def readable() -> None:
        if done.done():
            return
        try:
            pgconn.consume_input()
            while not pgconn.is_busy():
                result = pgconn.get_result()
                if result is None:
                    break
                results.append(result)
            else:
                return  # the rest of the reply is still on its way
            failed = [r for r in results if r.status == pq.ExecStatus.FATAL_ERROR]
            if failed:
                raise errors.error_from_result(failed[0], conn.info.encoding)
            if take is not None:
                take(results[-1])
        except Exception as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        readable()  # the reply may be in libpq's buffer already
        await done
    finally:
        loop.remove_reader(fd)


async def _ready(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Until the socket can be written, or read (the server talks first)."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
        loop.remove_writer(fd)
