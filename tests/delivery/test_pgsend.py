"""PostgreSQL's fast path of the sender (db/pgsend.py): a claim and a journal commit are each
one prepared statement on psycopg's asyncio connection, committed as it runs. The claim's and
the journal's behaviour is tested on both engines in test_queue_unit.py and
test_journal_unit.py (whose `db.claim` and fast writer take this path on PostgreSQL)."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from sqlalchemy import text

from newsletter.db import pgsend
from newsletter.db.engine import make_engine
from newsletter.db.migrate import upgrade
from newsletter.db.models import utcnow
from newsletter.delivery import queue as q
from tests.conftest import pg_database
from tests.delivery.sender_fixtures import configure, seed, suppress, write_issue

pytestmark = pytest.mark.postgresql_only


def _lane(db):
    return pgsend.Lane(pgsend.conninfo(db.engine))


def test_two_workers_claiming_at_once_take_disjoint_batches_and_leave_nobody_out(db):
    seed(db.workspace, ["en", "fr", "es"] * 10)
    issue_id = db.issue()
    db.enqueue(issue_id)

    async def both():
        lanes = [_lane(db), _lane(db)]
        try:
            return await asyncio.gather(*(
                q.claim_fast(lane, issue_id, f"h:1:w{n}", 20, 60, db.key)
                for n, lane in enumerate(lanes)))
        finally:
            for lane in lanes:
                lane.close()

    first, second = asyncio.run(both())
    mine = {c.delivery_id for c in first}
    theirs = {c.delivery_id for c in second}
    assert not mine & theirs and mine | theirs == set(db.ids(issue_id))
    rows = db.rows()
    assert {rows[i].worker for i in mine} == {"h:1:w0"}
    assert {rows[i].worker for i in theirs} == {"h:1:w1"}


def test_the_claim_hashes_addresses_in_sql_with_the_address_key(db):
    emails = seed(db.workspace, ["en", "fr"])
    issue_id = db.issue()
    db.enqueue(issue_id)
    suppress(db.workspace, emails[1].upper())  # the hash folds case, as keyring's does
    claimed = db.claim(issue_id)
    assert [c.email for c in claimed] == [emails[0]]
    assert db.rows()[db.ids(issue_id)[1]].last_reply == "skipped: suppressed"


def test_a_claim_and_a_commit_are_each_one_statement_prepared_on_the_server(db):
    seed(db.workspace, ["en", "fr", "es"])
    issue_id = db.issue()
    db.enqueue(issue_id)
    lane = _lane(db)

    async def run():
        try:
            claimed = await q.claim_fast(lane, issue_id, "h:1:me", 10, 60, db.key)
            ids = [c.delivery_id for c in claimed]
            owned = await pgsend.journal(lane, issue_id=issue_id, worker="h:1:me",
                                         intents=ids[1:], outcomes=[], released=ids[:1],
                                         languages=[], now=utcnow())
            sent = await pgsend.journal(
                lane, issue_id=issue_id, worker="h:1:me", intents=[],
                outcomes=[(i, "sent", None, None, 1) for i in ids[1:]], released=[],
                languages=["en"], now=utcnow())
            cur = await (await lane.connection()).execute(
                "SELECT statement FROM pg_prepared_statements")
            return ids, owned, sent, [s for (s,) in await cur.fetchall()]
        finally:
            lane.close()

    ids, owned, sent, prepared = asyncio.run(run())
    assert owned == set(ids[1:]) and sent == set()
    kinds = {("SKIP LOCKED" in s and "suppressions" in s, "'sending'" in s,
              "'sent'" in s and "editions" in s) for s in prepared}
    # a commit runs only the parts it has something for: released claims and intents, then
    # outcomes and an edition's first send
    assert kinds == {(True, False, False), (False, True, False), (False, False, True)}
    rows = db.rows()
    assert [(rows[i].status, rows[i].worker) for i in ids] == [
        ("queued", None), ("sent", None), ("sent", None)]


def test_a_commit_grants_its_intents_from_the_socket_callback_before_its_task_resumes(db):
    """The connections waiting to write DATA hear their intents one turn of the event loop
    sooner: the journal's `granted` runs in the reader callback, outside any task."""
    seed(db.workspace, ["en", "fr", "es"])
    issue_id = db.issue()
    db.enqueue(issue_id)
    ids = [c.delivery_id for c in db.claim(issue_id)]
    lane = _lane(db)
    heard = []

    def granted(owned):
        heard.append((owned, asyncio.current_task()))

    async def run():
        try:
            return await pgsend.journal(lane, issue_id=issue_id, worker="h:1:me",
                                        intents=ids[:2], outcomes=[], released=[],
                                        languages=[], now=utcnow(), granted=granted)
        finally:
            lane.close()

    assert asyncio.run(run()) == set(ids[:2])
    assert heard == [(set(ids[:2]), None)]  # None: not in a task, in the loop's callback
    assert [db.rows()[i].status for i in ids] == ["sending", "sending", "queued"]


def test_a_failing_statement_raises_and_grants_nothing(db):
    lane = _lane(db)
    heard = []

    async def run():
        try:
            await pgsend.run(lane, "SELECT 1 / %(zero)s", {"zero": 0}, heard.append)
        finally:
            lane.close()

    with pytest.raises(psycopg.errors.DivisionByZero):
        asyncio.run(run())
    assert heard == []


def test_a_statement_larger_than_the_socket_buffer_goes_out_whole(db):
    """libpq cannot send it in one write: `run` waits for the socket and flushes the rest."""
    ids = list(range(1_500_000))  # ~11 MB of parameter text
    lane = _lane(db)

    async def run():
        try:
            return await pgsend.run(
                lane, "SELECT count(*)::int FROM unnest(%(ids)s::int[])", {"ids": ids})
        finally:
            lane.close()

    assert asyncio.run(run()) == [len(ids)]


def test_a_commit_keeps_an_id_to_the_first_thing_it_says_about_it(db):
    """The parts of one statement see one snapshot: an outcome wins over a release of the same
    row, and an intent for a row settled or released in the same commit is not granted (the
    sequential writers' `worker = me` conditions do the same)."""
    seed(db.workspace, ["en", "fr", "es"])
    issue_id = db.issue()
    db.enqueue(issue_id)
    ids = [c.delivery_id for c in db.claim(issue_id)]
    lane = _lane(db)

    async def run():
        try:
            return await pgsend.journal(
                lane, issue_id=issue_id, worker="h:1:me", intents=ids,
                outcomes=[(ids[0], "failed", "550 no", None, 1)], released=ids[:2],
                languages=[], now=utcnow())
        finally:
            lane.close()

    assert asyncio.run(run()) == {ids[2]}
    rows = db.rows()
    assert [(rows[i].status, rows[i].worker, rows[i].attempts) for i in ids] == [
        ("failed", None, 1), ("queued", None, 0), ("sending", "h:1:me", 0)]


def test_the_send_lanes_plan_their_statements_once(db):
    """A claim's and a commit's plan does not depend on their values: the server keeps one
    generic plan for each instead of planning every run again (planning was a quarter of the
    journal's server CPU)."""
    seed(db.workspace, ["en", "fr", "es"] * 4)
    issue_id = db.issue()
    db.enqueue(issue_id)
    lane = _lane(db)

    async def run():
        try:
            for _ in range(8):
                claimed = await q.claim_fast(lane, issue_id, "h:1:me", 1, 60, db.key)
                ids = [c.delivery_id for c in claimed]
                await pgsend.journal(lane, issue_id=issue_id, worker="h:1:me", intents=ids,
                                     outcomes=[], released=[], languages=[], now=utcnow())
            cur = await (await lane.connection()).execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements")
            return await cur.fetchall()
        finally:
            lane.close()

    plans = asyncio.run(run())
    assert len(plans) == 2 and all(custom == 0 and generic >= 8 for generic, custom in plans)


def _updates(engine) -> tuple[int, int]:
    """Updates of deliveries so far, and how many of them were HOT (no new index entry)."""
    with engine.connect() as conn:  # a new session: a fresh snapshot of the statistics
        row = conn.execute(text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                                "WHERE relname = 'deliveries'")).one()
    return row[0], row[1]


def _updates_reported(engine, at_least: int, timeout: float = 20.0) -> tuple[int, int]:
    """`_updates` once the send's backends have reported `at_least` updates (each reports its
    counts when its connection closes, a moment after the client left)."""
    deadline = time.monotonic() + timeout
    while (counts := _updates(engine))[0] < at_least and time.monotonic() < deadline:
        time.sleep(0.1)
    return counts


def test_a_send_leases_its_rows_in_place_with_no_new_index_entry(
        workspace, db_url, run, smtp_server):
    """The claim changes no indexed column, and migration 0012 leaves it room in the page, so
    PostgreSQL writes it HOT: a third of a send's updates (claim, intent, outcome per row).
    Before, the enqueue filled the pages and almost every update went to another page, with a
    new entry in every index."""
    with pg_database("nl_hot") as url:
        engine = make_engine(url)
        upgrade(engine)
        configure(workspace, url, smtp_server.port, connections=4, batch_size=50)
        write_issue(workspace)
        seed(workspace, ["en", "fr", "es"] * 100)
        assert _updates(engine) == (0, 0)
        assert run.json("send", "nov", "--yes")["sent"] == 300
        updates, hot = _updates_reported(engine, 900)
        engine.dispose()
    assert updates >= 900 and hot >= 0.3 * updates, (updates, hot)
