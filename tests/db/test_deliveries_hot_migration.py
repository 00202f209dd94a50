"""Migration 0012 leaves room in the deliveries' pages (fillfactor) and keeps sent rows out of
the claim index, on PostgreSQL, and loses nothing on either engine: an issue under way at 0011
comes through whole and its rows can still be claimed."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Engine, text

from newsletter.db.engine import make_engine
from newsletter.db.migrate import alembic_config, upgrade
from newsletter.delivery.queue import claimable
from tests.db.test_address_key_migration import empty_url  # noqa: F401 - the fixture
from tests.db.test_workers_migration import _at_0008_with_an_issue_under_way, _issue_and_rows


def _layout(engine: Engine) -> tuple[list[str] | None, str]:
    """The deliveries table's storage options (PostgreSQL; None on SQLite) and how its claim
    index is defined."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return None, conn.execute(text(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_deliveries_claim'")).scalar_one()
        options = conn.execute(text(
            "SELECT reloptions FROM pg_class WHERE relname = 'deliveries'")).scalar_one()
        index = conn.execute(text(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_deliveries_claim'")).scalar_one()
    return options, index


def test_upgrade_to_0012_keeps_every_delivery_and_downgrade_puts_the_layout_back(
        empty_url) -> None:  # noqa: F811
    engine = make_engine(empty_url)
    _at_0008_with_an_issue_under_way(engine)
    upgrade(engine, "0011")
    before, old_layout = _issue_and_rows(engine), _layout(engine)
    upgrade(engine)
    assert _issue_and_rows(engine) == before
    assert claimable(engine, 1)  # its queued row, found through the claim index
    if engine.dialect.name == "sqlite":
        assert _layout(engine) == old_layout  # nothing to do on SQLite
    command.downgrade(alembic_config(engine), "0011")
    assert _issue_and_rows(engine) == before
    assert _layout(engine) == old_layout
    engine.dispose()


@pytest.mark.postgresql_only
def test_deliveries_leave_room_for_their_updates_and_sent_rows_out_of_the_claim_index(
        db_url) -> None:
    engine = make_engine(db_url)
    options, index = _layout(engine)
    engine.dispose()
    assert options == ["fillfactor=40"]
    assert index.endswith(
        "(issue_id, status, next_attempt_at) WHERE ((status)::text <> 'sent'::text)")
