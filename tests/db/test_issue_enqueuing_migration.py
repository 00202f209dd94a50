"""Migration 0011 adds issues.enqueuing and loses nothing: an issue under way at 0010, with its
editions and deliveries, comes through whole with its enqueue complete (it was made in one
transaction), so it is set sent as soon as its last delivery is settled."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, text

from newsletter.db.engine import make_engine
from newsletter.db.migrate import alembic_config, upgrade
from newsletter.delivery.issues import settle
from tests.db.test_address_key_migration import empty_url  # noqa: F401 - the fixture
from tests.db.test_workers_migration import _at_0008_with_an_issue_under_way, _issue_and_rows


def _enqueuing(engine: Engine) -> list[bool]:
    with engine.connect() as conn:
        return [bool(v) for v in conn.execute(text("SELECT enqueuing FROM issues")).scalars()]


def test_upgrade_to_0011_keeps_issues_under_way_and_lets_them_be_sent(
        empty_url) -> None:  # noqa: F811
    engine = make_engine(empty_url)
    _at_0008_with_an_issue_under_way(engine)
    upgrade(engine, "0010")
    before = _issue_and_rows(engine)
    upgrade(engine)
    assert _issue_and_rows(engine) == before
    assert _enqueuing(engine) == [False]
    assert settle(engine, 1) == ("sending", False)  # two deliveries still wait
    with engine.begin() as conn:
        conn.execute(text("UPDATE deliveries SET status = 'sent'"))
    assert settle(engine, 1) == ("sent", True)
    command.downgrade(alembic_config(engine), "0010")
    issue, editions, rows = _issue_and_rows(engine)
    assert (editions, rows[:1]) == (before[1], before[2][:1])
    assert issue[:2] == ("nov", "sent")
    engine.dispose()
