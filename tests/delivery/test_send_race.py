"""Two `newsletter send` of a new issue started at the same moment (dispatch.begin_send).

Both find no issue row and insert one: the second waits for the first's transaction, takes
its row instead of failing on the slug, sees its editions and first rows, and enqueues the
rest. Every subscriber gets exactly one delivery and neither editor sees an error.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import Engine, select, text

from newsletter.config import load_settings
from newsletter.db import sender
from newsletter.db.tables import DELIVERIES, ISSUES
from newsletter.delivery import dispatch
from newsletter.delivery import queue as q
from tests.conftest import address_key
from tests.delivery.sender_fixtures import configure, seed, write_issue

RECIPIENTS = 60


def _waiting(engine: Engine, sessions: int, timeout: float = 10.0) -> bool:
    """Whether `sessions` other sessions of this database wait for a lock."""
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            if conn.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")) >= sessions:
                return True
            # pg_stat_activity is read once per transaction: a new one sees the sends that
            # began to wait since (polled in one, it missed them whenever it came first)
            conn.rollback()
            time.sleep(0.01)
    return False


def _activity(engine: Engine) -> list[tuple[object, ...]]:
    """The other sessions of this database: what each waits for and runs (for a failure)."""
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(
            "SELECT state, wait_event_type, wait_event, left(query, 40) "
            "FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"))]


@pytest.mark.postgresql_only  # on SQLite the write lock runs one send after the other
def test_two_sends_of_a_new_issue_started_at_once_give_everyone_one_delivery(
        workspace, db_url, services, monkeypatch):
    configure(workspace, db_url, 1)
    write_issue(workspace)
    seed(workspace, ["en", "fr", "es"] * (RECIPIENTS // 3))
    settings = load_settings(workspace)
    engine = sender.sender_engine(settings.database_url, address_key(db_url))
    monkeypatch.setattr(dispatch, "FIRST_CHUNK", 20)
    monkeypatch.setattr(dispatch, "CHUNK", 20)
    plans = [dispatch.prepare_send(settings, engine, "nov") for _ in range(2)]
    errors: list[BaseException] = []

    def send(plan: dispatch.SendPlan) -> None:
        try:
            dispatch.begin_send(settings, engine, plan)
        except BaseException as exc:  # what that send's editor would see
            errors.append(exc)

    sends = [threading.Thread(target=send, args=(plan,)) for plan in plans]
    # Both reach the issue's insert before either commits: a lock on the list row, which
    # the insert's foreign key check waits for, holds them there until both wait.
    with engine.connect() as conn, conn.begin():
        conn.execute(text("SELECT id FROM lists FOR UPDATE"))
        for thread in sends:
            thread.start()
        assert _waiting(engine, 2), (errors, _activity(engine))
    for thread in sends:
        thread.join(timeout=60)

    assert errors == []
    with engine.connect() as conn:
        rows = conn.execute(select(DELIVERIES.c.subscriber_id)).scalars().all()
        issues = conn.execute(select(ISSUES.c.id, ISSUES.c.status)).all()
        assert not q.enqueuing(conn, issues[0].id)
    assert len(issues) == 1 and issues[0].status == "sending"
    assert len(rows) == RECIPIENTS and set(Counter(rows).values()) == {1}
    engine.dispose()
