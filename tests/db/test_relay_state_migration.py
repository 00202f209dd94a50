"""Migration 0010 adds the relays' shared view (relay_state, relay_hours) and loses nothing: an
issue under way at 0009, with its deliveries and a registered worker, comes through whole, and
a relay can be taken out and counted."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import Engine, text

from newsletter.db.engine import make_engine
from newsletter.db.migrate import alembic_config, upgrade
from newsletter.delivery.relayview import relays_out, take_out
from tests.db.test_address_key_migration import empty_url  # noqa: F401 - the fixture
from tests.db.test_workers_migration import _at_0008_with_an_issue_under_way, _issue_and_rows


def _at_0009_with_a_worker(engine: Engine) -> None:
    _at_0008_with_an_issue_under_way(engine)
    upgrade(engine, "0009")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO workers (name, host, pid, started_at, heartbeat_at, issue_id, sent, "
            "rate) VALUES ('h:1:t2:abc', 'h', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1, 7, "
            "2.5)"))


def _workers(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT name, issue_id, sent FROM workers"))]


def test_upgrade_to_0010_keeps_issues_and_workers_and_takes_the_relays_shared_view(
        empty_url) -> None:  # noqa: F811
    engine = make_engine(empty_url)
    _at_0009_with_a_worker(engine)
    before, workers = _issue_and_rows(engine), _workers(engine)
    upgrade(engine)
    assert (_issue_and_rows(engine), _workers(engine)) == (before, workers)
    until = datetime(2030, 1, 7, 10, 30, tzinfo=UTC)
    take_out(engine, "backup", until, "answered 421 4.3.2 busy")
    found = relays_out(engine, datetime(2030, 1, 7, 10, 0, tzinfo=UTC))
    assert [(o.name, o.until, o.reason) for o in found] == [
        ("backup", until, "answered 421 4.3.2 busy")]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO relay_hours (relay, hour, sent) VALUES ('backup', 1, 3)"))
    command.downgrade(alembic_config(engine), "0009")
    assert (_issue_and_rows(engine), _workers(engine)) == (before, workers)
    engine.dispose()
