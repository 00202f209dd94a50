"""The queue's functions one at a time, in-process, on both engines.

Each test calls `delivery/queue.py` directly (no SMTP, no issue compiling) and reads the rows
back, so a slip in a state transition, a lease, the at-most-once intent or the issue's status
fails here, fast: these tests are also the mutation-testing selection for queue.py.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta, timezone

import pytest
from sqlalchemy import literal, select, update

from newsletter.db import sender
from newsletter.db.engine import is_sqlite
from newsletter.db.models import utcnow
from newsletter.db.tables import DELIVERIES, EDITIONS, ISSUES, SUBSCRIBERS, SUBSCRIPTIONS
from newsletter.delivery import editions, issues, recipients
from newsletter.delivery import queue as q
from newsletter.delivery.liveness import worker_name
from newsletter.keyring import address_hash
from tests.delivery.queue_fixtures import DEAD, DEAD_TOO, FAR, READERS, edition, near, reading
from tests.delivery.sender_fixtures import seed, suppress

# ---------------------------------------------------------------- hashing and the audience


@pytest.mark.parametrize("length", [16, 64, 65, 100])
def test_sql_address_hash_matches_the_suppression_lists_hash_for_any_key_length(
        length, db_url, workspace):
    key = ("k3y-" * 30)[:length]
    engine = sender.sender_engine(db_url, key)
    with engine.connect() as conn:
        for email in ("Reader@Example.ORG", "élise@exemple.fr"):
            got = conn.execute(select(sender.hash_expr(engine, literal(email), key))).scalar_one()
            assert got == address_hash(email, key)
    engine.dispose()


def test_audience_is_the_confirmed_unsuppressed_subscribers_of_the_list_in_their_language(db):
    emails = seed(db.workspace, ["fr", None, "es", "en"])
    seed(db.workspace, ["en"], status="unsubscribed", start=10)
    seed(db.workspace, ["fr"], list_slug="other", start=20)
    suppress(db.workspace, emails[3].upper())
    with db.engine.connect() as conn:
        rows = conn.execute(
            recipients.audience(db.engine, 1, reading("de"), db.key).order_by(SUBSCRIBERS.c.id)
        ).all()
    assert [(r.email, r.name, r.lang) for r in rows] == [
        (emails[0], "Reader 0", "fr"),
        (emails[1], "Reader 1", "de"),
        (emails[2], "Reader 2", "es"),
    ]
    assert rows[0].attributes == {}


def test_count_by_language_counts_the_audience_and_with_an_issue_only_those_not_enqueued(db):
    seed(db.workspace, ["fr", None, "en", "fr"])
    assert recipients.count_by_language(db.engine, 1, reading("en"), db.key, None) == {
        "en": 2,
        "fr": 2,
    }
    issue_id = db.issue()
    db.enqueue(issue_id)
    seed(db.workspace, ["fr", "es"], start=10)
    other = db.issue("dec")  # another issue's rows do not count as enqueued for this one
    assert recipients.count_by_language(db.engine, 1, reading("en"), db.key, issue_id) == {
        "fr": 1,
        "es": 1,
    }
    assert recipients.count_by_language(db.engine, 1, reading("en"), db.key, other) == {
        "en": 2,
        "fr": 3,
        "es": 1,
    }


def _streamed(db, batch=1000, pending=None):
    batches = list(
        recipients.stream_audience(
            db.engine, 1, reading("de"), db.key, batch=batch, pending=pending
        )
    )
    return [len(b) for b in batches], [r.email for b in batches for r in b]


def test_stream_audience_pages_through_everyone_in_order(db):
    emails = seed(db.workspace, ["en", "fr", "es", None, "fr"])
    with db.engine.begin() as conn:  # PostgreSQL now stores their rows last
        conn.execute(update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == 1).values(name="First"))
        conn.execute(
            update(SUBSCRIPTIONS)
            .where(SUBSCRIPTIONS.c.subscriber_id == 1)
            .values(updated_at=utcnow())
        )
    assert _streamed(db, batch=2) == ([2, 2, 1], emails)
    assert _streamed(db) == ([5], emails)
    rows = next(recipients.stream_audience(db.engine, 1, reading("de"), db.key))
    assert [(r.id, r.name, r.lang) for r in rows] == [
        (1, "First", "en"),
        (2, "Reader 1", "fr"),
        (3, "Reader 2", "es"),
        (4, "Reader 3", "de"),
        (5, "Reader 4", "fr"),
    ]


def test_stream_audience_with_pending_yields_only_whom_the_send_would_mail(db):
    emails = seed(db.workspace, ["en"] * 7)
    issue_id = db.issue()
    db.enqueue(issue_id)
    later = seed(db.workspace, ["fr"], start=10)  # not enqueued yet
    ids = db.ids(issue_id)
    now = utcnow()
    due_by = now + timedelta(seconds=30)
    db.set([ids[0]], status="sent")
    db.set([ids[1]], status="deferred", next_attempt_at=now + timedelta(hours=1))
    db.set([ids[2]], status="deferred", next_attempt_at=now + timedelta(seconds=5))
    db.set([ids[3]], status="unknown")
    db.set([ids[4]], status="failed")
    db.set([ids[6]], status="deferred", next_attempt_at=due_by)  # due just in time
    # The same instant written in another time zone means the same thing.
    due_by = due_by.astimezone(timezone(timedelta(hours=5)))
    resume = recipients.Pending(issue_id, False, q.OPEN, due_by)
    assert _streamed(db, pending=resume)[1] == [emails[2], emails[5], emails[6]]
    force = recipients.Pending(issue_id, True, q.OPEN, due_by)
    assert _streamed(db, batch=1, pending=force) == (
        [1, 1, 1, 1],
        [emails[2], emails[5], emails[6], *later],
    )
    unknown_too = recipients.Pending(issue_id, False, (*q.OPEN, "unknown"), due_by)
    assert _streamed(db, pending=unknown_too)[1] == [emails[2], emails[3], emails[5], emails[6]]
    other = recipients.Pending(db.issue("dec"), False, q.OPEN, due_by)
    assert _streamed(db, pending=other)[1] == []


# ---------------------------------------------------------------- issue, enqueue, editions


def test_open_issue_creates_a_draft_once_and_then_finds_it(db):
    seed(db.workspace, [])
    with sender.write_tx(db.engine) as conn, conn.begin():
        first = issues.open_issue(conn, "nov", 1)
        again = issues.open_issue(conn, "nov", 1)
        other = issues.open_issue(conn, "dec", 1)
        assert issues.find_issue(conn, "jan") is None
    assert first == again == issues.IssueRow(first.id, "nov", 1, "draft")
    assert other.id != first.id and other.slug == "dec"
    assert db.issue_row(first.id).data == {}


def test_enqueue_numbers_deliveries_in_subscriber_order_whatever_the_tables_layout(db):
    # Rewriting each row, last first, leaves the newest versions in reverse order on disk, so a
    # scan meets the subscribers 6, 5, ... 1. The queue still follows the subscribers' order.
    seed(db.workspace, ["en", "fr", "es", "en", "fr", "en"])
    with db.engine.begin() as conn:
        for sid in range(6, 0, -1):
            conn.execute(update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == sid).values(name=f"R{sid}"))
            conn.execute(update(SUBSCRIPTIONS).where(SUBSCRIPTIONS.c.subscriber_id == sid)
                         .values(updated_at=utcnow()))
    issue_id = db.issue()
    with sender.write_tx(db.engine) as conn, conn.begin():
        if not is_sqlite(db.engine):  # the plan a large list gets: hash joins, in scan order
            conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
            conn.exec_driver_sql("SET LOCAL enable_mergejoin = off")
        q.enqueue(conn, db.engine, issue_id=issue_id, list_id=1, languages=READERS,
                  address_key=db.key, mapping={"en": "en", "fr": "fr", "es": "es"})
    assert [r.subscriber_id for r in db.rows().values()] == [1, 2, 3, 4, 5, 6]


def test_enqueue_adds_one_queued_row_per_recipient_in_the_mapped_language(db):
    # Reader 2 reads Spanish, which the mapping sends the French edition.
    emails = seed(db.workspace, ["en", "es", "fr", None])
    seed(db.workspace, ["en"], status="pending", start=10)
    suppress(db.workspace, emails[2])
    issue_id = db.issue()
    started = utcnow()
    with sender.write_tx(db.engine) as conn, conn.begin():
        if not is_sqlite(db.engine):  # a session in another time zone
            conn.exec_driver_sql("SET LOCAL TIME ZONE 'Asia/Tokyo'")
        assert (
            q.enqueue(
                conn,
                db.engine,
                issue_id=issue_id,
                list_id=1,
                languages=READERS,
                address_key=db.key,
                mapping={"en": "en", "es": "fr"},
            )
            == 3
        )
    rows = list(db.rows().values())
    assert [
        (r.subscriber_id, r.language, r.status, r.attempts, r.list_id, r.issue_id) for r in rows
    ] == [
        (1, "en", "queued", 0, 1, issue_id),
        (2, "fr", "queued", 0, 1, issue_id),
        (4, "en", "queued", 0, 1, issue_id),
    ]
    assert all(near(r.created_at, started) and r.worker is None for r in rows)
    assert db.enqueue(issue_id) == 0  # nobody gets a second row
    seed(db.workspace, ["es"], start=20)
    assert db.enqueue(issue_id) == 1
    assert db.enqueue(db.issue("dec")) == 4  # another issue mails everyone again


def test_issue_status_stamps_the_first_start_and_the_end(db):
    seed(db.workspace, [])
    issue_id, paused = db.issue(), db.issue("dec")
    with sender.write_tx(db.engine) as conn, conn.begin():
        issues.set_issue_status(conn, paused, "paused")
    row = db.issue_row(paused)
    assert (row.status, row.started_at, row.sent_at) == ("paused", None, None)
    with sender.write_tx(db.engine) as conn, conn.begin():
        if not is_sqlite(db.engine):  # a session in another time zone
            conn.exec_driver_sql("SET LOCAL TIME ZONE 'Asia/Tokyo'")
        issues.set_issue_status(conn, issue_id, "sending")
    first = db.issue_row(issue_id).started_at
    assert near(first, utcnow()) and db.issue_row(issue_id).sent_at is None
    time.sleep(0.01)
    with sender.write_tx(db.engine) as conn, conn.begin():
        issues.set_issue_status(conn, issue_id, "sending")  # a resumed send keeps the first start
        issues.set_issue_status(conn, issue_id, "sent")
    row = db.issue_row(issue_id)
    assert (row.status, row.started_at) == ("sent", first)
    assert row.sent_at > first
    assert db.issue_row(paused).status == "paused"


def test_store_editions_inserts_then_refreshes_and_keeps_the_first_sent_time(db):
    seed(db.workspace, [])
    issue_id, other = db.issue(), db.issue("dec")
    sent = utcnow() - timedelta(days=1)
    with sender.write_tx(db.engine) as conn, conn.begin():
        editions.store_editions(conn, issue_id, [edition("en", "h1"), edition("fr", "h2")])
        editions.store_editions(conn, other, [edition("en", "o1")])
        conn.execute(update(EDITIONS).values(sent_at=sent))
        editions.store_editions(conn, issue_id, [edition("en", "h3", "New subject")])
        assert editions.stored_hashes(conn, issue_id) == {"en": "h3", "fr": "h2"}
        assert editions.stored_hashes(conn, other) == {"en": "o1"}
        rows = conn.execute(select(EDITIONS).order_by(EDITIONS.c.id)).all()
    assert [(r.issue_id, r.language, r.subject, r.number, r.sent_at) for r in rows] == [
        (issue_id, "en", "New subject", "11", sent),
        (issue_id, "fr", "News", "11", sent),
        (other, "en", "News", "11", sent),
    ]
    assert rows[0].data == {}


# ---------------------------------------------------------------- claims and leases


def test_claim_leases_due_rows_in_order_and_leaves_them_queued(db):
    seed(db.workspace, ["en", "fr", "es", "en", "fr", "en"])
    with db.engine.begin() as conn:
        conn.execute(
            update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == 2).values(name="", attributes=None)
        )
        conn.execute(
            update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == 3).values(attributes={"city": "Lyon"})
        )
    issue_id = db.issue()
    db.enqueue(issue_id)
    ids = db.ids(issue_id)
    now = utcnow()
    db.set([ids[3]], status="deferred", next_attempt_at=now + timedelta(hours=1), attempts=2)
    db.set([ids[4]], status="deferred", next_attempt_at=now - timedelta(seconds=1), attempts=3)
    db.set([ids[5]], status="sent")
    first = db.claim(issue_id, "h:1:me", limit=2, lease=90)
    rest = db.claim(issue_id, "h:1:other", limit=10, lease=90)
    assert len(first) == 2 and len(rest) == 2
    assert [c.delivery_id for c in first] == sorted(c.delivery_id for c in first)
    claimed = {c.delivery_id: c for c in first + rest}
    assert sorted(claimed) == [ids[0], ids[1], ids[2], ids[4]]
    assert claimed[ids[0]] == q.Claimed(ids[0], 1, "reader0@example.org", "Reader 0", {}, "en", 0)
    assert (claimed[ids[1]].name, claimed[ids[1]].attributes) == ("", {})
    assert [
        (claimed[i].attributes, claimed[i].attempts, claimed[i].language) for i in (ids[2], ids[4])
    ] == [({"city": "Lyon"}, 0, "es"), ({}, 3, "fr")]
    rows = db.rows()
    owner = {
        c.delivery_id: w for w, batch in (("h:1:me", first), ("h:1:other", rest)) for c in batch
    }
    assert [(rows[i].status, rows[i].worker) for i in ids] == [
        ("queued", owner[ids[0]]),
        ("queued", owner[ids[1]]),
        ("queued", owner[ids[2]]),
        ("deferred", None),
        ("deferred", owner[ids[4]]),
        ("sent", None),
    ]
    assert all(near(rows[i].lease_until, now + timedelta(seconds=90)) for i in claimed)
    assert db.claim(issue_id, "h:1:third") == []  # held leases and future retries stay


def test_claim_takes_back_an_expired_lease_and_only_from_its_own_issue(db):
    seed(db.workspace, ["en", "fr"])
    issue_id, other = db.issue(), db.issue("dec")
    db.enqueue(issue_id)
    db.enqueue(other)
    ids = db.ids(issue_id)
    db.claim(issue_id, "h:1:old")
    db.set([ids[0]], lease_until=utcnow() - timedelta(seconds=1))
    assert [c.delivery_id for c in db.claim(issue_id, "h:1:new")] == [ids[0]]
    assert {r.worker for r in db.rows().values() if r.issue_id == other} == {None}


def test_claim_skips_those_who_left_or_were_suppressed_after_enqueue(db):
    emails = seed(db.workspace, ["en", "fr", "es", "en"])
    issue_id = db.issue()
    db.enqueue(issue_id)
    ids = db.ids(issue_id)
    with db.engine.begin() as conn:
        conn.execute(
            update(SUBSCRIPTIONS)
            .where(SUBSCRIPTIONS.c.subscriber_id == 2)
            .values(status="unsubscribed")
        )
        conn.execute(
            update(SUBSCRIPTIONS)
            .where(SUBSCRIPTIONS.c.subscriber_id == 4)
            .values(status="unsubscribed")
        )
    suppress(db.workspace, emails[2])
    claimed = db.claim(issue_id)
    assert [c.delivery_id for c in claimed] == [ids[0]]
    rows = db.rows()
    assert [
        (rows[i].status, rows[i].last_reply, rows[i].worker, rows[i].lease_until) for i in ids[1:]
    ] == [
        ("skipped", "skipped: no longer subscribed", None, None),
        ("skipped", "skipped: suppressed", None, None),
        ("skipped", "skipped: no longer subscribed", None, None),
    ]
    assert issues.remaining(db.engine, issue_id) == 1


def test_claim_skips_a_subscriber_removed_from_the_list(db):
    seed(db.workspace, ["en", "fr"])
    issue_id = db.issue()
    db.enqueue(issue_id)
    with db.engine.begin() as conn:
        conn.execute(SUBSCRIPTIONS.delete().where(SUBSCRIPTIONS.c.subscriber_id == 2))
    assert [c.subscriber_id for c in db.claim(issue_id)] == [1]
    assert db.rows()[db.ids(issue_id)[1]].status == "skipped"


def test_claim_reads_the_subscription_to_the_issues_own_list(db):
    seed(db.workspace, ["en", "fr"])
    seed(db.workspace, [], list_slug="other")
    with db.engine.begin() as conn:  # both also joined list 2; 1 then left list 1
        conn.execute(
            SUBSCRIPTIONS.insert(),
            [
                {
                    "subscriber_id": sid,
                    "list_id": 2,
                    "status": "confirmed",
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                }
                for sid in (1, 2)
            ],
        )
    issue_id = db.issue()
    db.enqueue(issue_id)
    with db.engine.begin() as conn:
        conn.execute(
            update(SUBSCRIPTIONS)
            .where(SUBSCRIPTIONS.c.subscriber_id == 1, SUBSCRIPTIONS.c.list_id == 1)
            .values(status="unsubscribed")
        )
    assert [c.subscriber_id for c in db.claim(issue_id)] == [2]  # once, and not 1
    assert [r.status for r in db.rows().values()] == ["skipped", "queued"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_claim_passes_over_rows_another_worker_is_claiming(db):
    seed(db.workspace, ["en", "fr", "es"])
    issue_id = db.issue()
    db.enqueue(issue_id)
    ids = db.ids(issue_id)
    with db.engine.connect() as other:
        other.execute(select(DELIVERIES.c.id).where(DELIVERIES.c.id == ids[0]).with_for_update())
        released = threading.Timer(3.0, other.rollback)
        released.start()
        claimed = db.claim(issue_id)
        released.cancel()
    assert [c.delivery_id for c in claimed] == ids[1:]


def test_renew_extends_only_this_workers_leases(db):
    seed(db.workspace, ["en", "fr", "es"])
    issue_id = db.issue()
    db.enqueue(issue_id)
    ids = db.ids(issue_id)
    db.claim(issue_id, "h:1:me", limit=2, lease=1)
    db.claim(issue_id, "h:1:other", lease=1)
    q.renew(db.engine, "h:1:me", 600)
    rows = db.rows()
    assert all(near(rows[i].lease_until, utcnow() + timedelta(seconds=600)) for i in ids[:2])
    assert near(rows[ids[2]].lease_until, utcnow() + timedelta(seconds=1))


def test_next_due_is_the_earliest_deferred_retry_of_the_issue(db):
    seed(db.workspace, ["en", "fr", "es", "en"])
    issue_id, other = db.issue(), db.issue("dec")
    assert q.next_due(db.engine, issue_id) is None
    # Rows that came since the run's claim came back empty (a chunk of the enqueue): now.
    db.enqueue(issue_id)
    assert near(q.next_due(db.engine, issue_id), utcnow())
    db.enqueue(other)
    ids, others = db.ids(issue_id), db.ids(other)
    db.set([ids[3]], status="sent")
    now = utcnow().replace(microsecond=0)
    db.set([ids[0]], status="deferred", next_attempt_at=now + timedelta(minutes=9))
    db.set([ids[1]], status="deferred", next_attempt_at=now + timedelta(minutes=3))
    db.set([ids[2]], status="queued", next_attempt_at=now + timedelta(minutes=1))
    db.set([others[0]], status="deferred", next_attempt_at=now + timedelta(minutes=2))
    assert q.next_due(db.engine, issue_id) == now + timedelta(minutes=3)


def test_remaining_counts_queued_deferred_and_in_flight_rows_of_the_issue(db):
    seed(db.workspace, ["en"] * 8)
    issue_id, other = db.issue(), db.issue("dec")
    db.enqueue(issue_id)
    db.enqueue(other)
    ids = db.ids(issue_id)
    for i, status in zip(
        ids,
        ["queued", "deferred", "sending", "sent", "failed", "unknown", "skipped", "queued"],
        strict=True,
    ):
        db.set([i], status=status)
    assert issues.remaining(db.engine, issue_id) == 4
    db.set(db.ids(other), status="sent")
    assert issues.remaining(db.engine, other) == 0


# ---------------------------------------------------------------- recovery


def test_recover_settles_what_dead_or_expired_workers_left_and_nothing_else(db):
    seed(db.workspace, ["en"] * 8)
    issue_id, other = db.issue(), db.issue("dec")
    db.enqueue(issue_id)
    db.enqueue(other)
    ids, others = db.ids(issue_id), db.ids(other)
    alive = worker_name()  # this process: alive
    future, past = utcnow() + timedelta(minutes=10), utcnow() - timedelta(seconds=1)
    db.set(ids[0:2], worker=DEAD, lease_until=future)
    db.set(ids[2:4], worker=alive, lease_until=future)
    db.set(ids[4:6], worker=FAR, lease_until=past)
    db.set(ids[6:8], worker=FAR, lease_until=future)
    db.set(others[:2], worker=DEAD_TOO, lease_until=future)
    db.set([ids[0], ids[2], ids[4], ids[6], others[0]], status="sending")
    db.set([ids[5]], status="deferred", next_attempt_at=past)
    assert q.recover(db.engine, issue_id) == {"unknown": 2, "released": 2, "requeued": 0}
    rows = db.rows()
    assert [(rows[i].status, rows[i].worker) for i in ids] == [
        ("unknown", None),
        ("queued", None),
        ("sending", alive),
        ("queued", alive),
        ("unknown", None),
        ("deferred", None),
        ("sending", FAR),
        ("queued", FAR),
    ]
    assert rows[ids[0]].last_reply == q.UNKNOWN_REPLY and rows[ids[0]].lease_until is None
    assert rows[ids[1]].lease_until is None and rows[ids[5]].lease_until is None
    assert rows[ids[5]].next_attempt_at == past
    assert [(rows[i].status, rows[i].worker) for i in others[:2]] == [
        ("sending", DEAD_TOO),
        ("queued", DEAD_TOO),
    ]


def test_recover_with_resend_unknown_queues_the_unknown_rows_again(db):
    seed(db.workspace, ["en"] * 4)
    issue_id, other = db.issue(), db.issue("dec")
    db.enqueue(issue_id)
    db.enqueue(other)
    ids = db.ids(issue_id)
    past = utcnow() - timedelta(minutes=1)
    db.set(ids[:2] + db.ids(other), status="unknown", next_attempt_at=past)
    db.set([ids[2]], status="sending", worker=DEAD, lease_until=utcnow())
    assert q.recover(db.engine, issue_id, resend_unknown=True) == {
        "unknown": 1,
        "released": 0,
        "requeued": 3,
    }
    rows = db.rows()
    assert [(rows[i].status, rows[i].next_attempt_at) for i in ids] == [
        ("queued", None),
        ("queued", None),
        ("queued", None),
        ("queued", None),
    ]
    assert {r.status for r in rows.values() if r.issue_id == other} == {"unknown"}
    assert len(db.claim(issue_id)) == 4


# ---------------------------------------------------------------- the write-ahead journal


def test_commit_journal_marks_intents_sending_only_for_rows_still_leased_and_open(db):
    seed(db.workspace, ["en"] * 5)
    issue_id = db.issue()
    db.enqueue(issue_id)
    ids = db.ids(issue_id)
    db.claim(issue_id, "h:1:me")
    db.set([ids[1]], status="deferred")
    db.set([ids[2]], status="sent")
    db.set([ids[3]], worker="h:1:thief")
    owned = q.commit_journal(
        db.engine, issue_id=issue_id, worker="h:1:me", intents=ids[:4], outcomes=[]
    )  # ids[4] is held, not intended
    assert owned == {ids[0], ids[1]}
    rows = db.rows()
    assert [rows[i].status for i in ids] == ["sending", "sending", "sent", "queued", "queued"]
    assert (
        q.commit_journal(
            db.engine, issue_id=issue_id, worker="h:1:me", intents=[ids[0]], outcomes=[]
        )
        == set()
    )  # already sending
    assert (
        q.commit_journal(db.engine, issue_id=issue_id, worker="h:1:me", intents=[], outcomes=[])
        == set()
    )


def test_commit_journal_records_each_outcome_with_its_attempt_reply_and_retry(db):
    seed(db.workspace, ["en"] * 6)
    issue_id = db.issue()
    db.enqueue(issue_id)
    ids = db.ids(issue_id)
    db.claim(issue_id, "h:1:me")
    db.set(ids, attempts=2, last_reply="old")
    retry = utcnow().replace(microsecond=250000) + timedelta(minutes=4)
    started = utcnow()
    owned = q.commit_journal(
        db.engine,
        issue_id=issue_id,
        worker="h:1:me",
        intents=[ids[5]],
        outcomes=[
            q.Outcome(ids[0], "sent", None, "en"),
            q.Outcome(ids[1], "deferred", "451 later", "en", retry),
            q.Outcome(ids[2], "failed", "550 no", "en"),
            q.Outcome(ids[3], "queued", "421 bye", "en"),
            q.Outcome(ids[4], "unknown", "lost", "en"),
        ],
    )
    assert owned == {ids[5]}
    rows = db.rows()
    assert [
        (rows[i].status, rows[i].attempts, rows[i].last_reply, rows[i].worker) for i in ids
    ] == [
        ("sent", 3, "old", None),
        ("deferred", 3, "451 later", None),
        ("failed", 3, "550 no", None),
        ("queued", 2, "421 bye", None),
        ("unknown", 3, "lost", None),
        ("sending", 2, "old", "h:1:me"),
    ]
    assert near(rows[ids[0]].sent_at, started) and rows[ids[1]].sent_at is None
    assert rows[ids[1]].next_attempt_at == retry and rows[ids[2]].next_attempt_at is None
    assert all(rows[i].lease_until is None for i in ids[:5])
    assert rows[ids[5]].lease_until is not None


def test_commit_journal_releases_only_its_own_claims(db):
    seed(db.workspace, ["en"] * 3)
    issue_id = db.issue()
    db.enqueue(issue_id)
    ids = db.ids(issue_id)
    db.claim(issue_id, "h:1:me")
    db.set([ids[2]], worker="h:1:other")
    q.commit_journal(
        db.engine,
        issue_id=issue_id,
        worker="h:1:me",
        intents=[],
        outcomes=[],
        released=[ids[0], ids[2]],
    )
    rows = db.rows()
    assert [(rows[i].worker, rows[i].lease_until is None) for i in ids] == [
        (None, True),
        ("h:1:me", False),
        ("h:1:other", False),
    ]
    assert [c.delivery_id for c in db.claim(issue_id, "h:1:third")] == ids[:1]


def test_commit_journal_stamps_the_first_send_of_each_language_of_the_issue(db):
    seed(db.workspace, [])
    issue_id, other = db.issue(), db.issue("dec")
    earlier = utcnow() - timedelta(days=2)
    with sender.write_tx(db.engine) as conn, conn.begin():
        editions.store_editions(
            conn, issue_id, [edition(lang, lang) for lang in ("en", "fr", "es")]
        )
        editions.store_editions(conn, other, [edition("en", "x")])
        conn.execute(
            update(EDITIONS)
            .where(EDITIONS.c.issue_id == issue_id, EDITIONS.c.language == "fr")
            .values(sent_at=earlier)
        )
    started = utcnow()
    q.commit_journal(
        db.engine,
        issue_id=issue_id,
        worker="w",
        intents=[],
        outcomes=[],
        sent_languages=["en", "fr"],
    )
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(EDITIONS.c.issue_id, EDITIONS.c.language, EDITIONS.c.sent_at).order_by(
                EDITIONS.c.id
            )
        ).all()
    assert near(rows[0].sent_at, started)
    assert [r.sent_at for r in rows[1:]] == [earlier, None, None]


# ---------------------------------------------------------------- SQLite's write lock


@pytest.mark.sqlite_only
def test_a_write_transaction_holds_sqlites_write_lock_from_its_begin(db):
    path = db.engine.url.database
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    with sender.write_tx(db.engine) as conn, conn.begin():
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    other.execute("BEGIN IMMEDIATE")  # free again once it committed
    other.execute("ROLLBACK")
    other.close()


@pytest.mark.sqlite_only
def test_a_write_transaction_waits_for_another_processes_lock_and_reads_do_not(db):
    seed(db.workspace, ["en"])
    issue_id = db.issue()
    other = sqlite3.connect(db.engine.url.database, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute(
        "INSERT INTO issues (slug, list_id, status, created_at, data) "
        "VALUES ('dec', 1, 'draft', '2026-12-01 00:00:00.000000', '{}')"
    )
    reads = []
    reader = threading.Thread(target=lambda: reads.append(issues.remaining(db.engine, issue_id)))
    reader.start()
    reader.join(5)
    assert reads == [0]  # did not wait for the writer
    threading.Timer(0.2, other.execute, ["COMMIT"]).start()
    assert db.enqueue(issue_id) == 1  # waited, then wrote
    with db.engine.connect() as conn:
        assert conn.execute(select(ISSUES.c.slug).order_by(ISSUES.c.id)).scalars().all() == [
            "nov",
            "dec",
        ]
    other.close()
