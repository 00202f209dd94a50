"""The queue's guarantees at the database level: leases, lost claims, crash recovery."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from newsletter.audience.language import ListLanguages
from newsletter.config import load_settings
from newsletter.db import sender
from newsletter.db.models import Delivery, utcnow
from newsletter.delivery import dispatch
from newsletter.delivery import queue as q
from newsletter.delivery.plan import plan_languages
from tests.conftest import address_key
from tests.delivery.sender_fixtures import configure, seed, write_issue


def _enqueued(workspace, db_url, n=10):
    configure(workspace, db_url, 1)
    write_issue(workspace)
    seed(workspace, ["en", "fr"] * (n // 2))
    settings = load_settings(workspace)
    engine = sender.sender_engine(settings.database_url, address_key(db_url))
    plan = dispatch.prepare_send(settings, engine, "nov")
    issue_id, added = dispatch.begin_send(settings, engine, plan)
    assert added == n
    return settings, engine, issue_id


def test_enqueue_is_idempotent_and_never_adds_a_second_row(workspace, db_url, services):
    settings, engine, issue_id = _enqueued(workspace, db_url)
    with sender.write_tx(engine) as conn, conn.begin():
        again = q.enqueue(conn, engine, issue_id=issue_id, list_id=1,
                          languages=ListLanguages(("en", "fr"), "en"),
                          address_key=address_key(db_url), mapping={"en": "en", "fr": "fr"})
    assert again == 0
    engine.dispose()


def test_two_workers_claim_disjoint_batches(workspace, db_url, services):
    settings, engine, issue_id = _enqueued(workspace, db_url)
    a = q.claim(engine, issue_id, "h:1:a", 6, 60, address_key(db_url))
    b = q.claim(engine, issue_id, "h:1:b", 6, 60, address_key(db_url))
    assert len(a) == 6 and len(b) == 4
    assert not {c.delivery_id for c in a} & {c.delivery_id for c in b}
    engine.dispose()


def test_an_expired_lease_returns_rows_and_the_old_owner_cannot_send_them(
        workspace, db_url, services):
    settings, engine, issue_id = _enqueued(workspace, db_url, n=2)
    first = q.claim(engine, issue_id, "h:1:old", 10, 60, address_key(db_url))
    with engine.begin() as conn:
        conn.execute(update(Delivery.__table__).values(lease_until=utcnow() - timedelta(1)))
    second = q.claim(engine, issue_id, "h:1:new", 10, 60, address_key(db_url))
    assert {c.delivery_id for c in second} == {c.delivery_id for c in first}
    owned = q.commit_journal(engine, issue_id=issue_id, worker="h:1:old",
                             intents=[c.delivery_id for c in first], outcomes=[])
    assert owned == set()  # the write-ahead intent refuses rows it no longer holds
    engine.dispose()


def test_recovery_turns_a_dead_workers_in_flight_rows_unknown_and_frees_its_claims(
        workspace, db_url, services):
    import socket

    settings, engine, issue_id = _enqueued(workspace, db_url, n=4)
    dead = f"{socket.gethostname()}:999999:dead"  # no such pid
    claimed = q.claim(engine, issue_id, dead, 10, 600, address_key(db_url))
    q.commit_journal(engine, issue_id=issue_id, worker=dead,
                     intents=[claimed[0].delivery_id], outcomes=[])
    summary = q.recover(engine, issue_id)
    assert summary == {"unknown": 1, "released": 3, "requeued": 0}
    with engine.connect() as conn:
        rows = dict(conn.execute(select(Delivery.id, Delivery.status)).all())
    assert rows[claimed[0].delivery_id] == "unknown"
    assert len(q.claim(engine, issue_id, "h:2:x", 10, 60, address_key(db_url))) == 3
    engine.dispose()


def test_language_plan_maps_missing_languages_only_to_the_named_fallback():
    plan = plan_languages({"en": 3, "de": 2}, ("en", "fr"), fallback="fr")
    assert plan.mapping == {"en": "en", "de": "fr"} and plan.recipients == {"en": 3, "fr": 2}
    assert plan.fallbacks == {"de": 2}
