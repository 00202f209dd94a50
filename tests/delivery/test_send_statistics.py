"""A send planned right after a bulk load of subscribers finds PostgreSQL's planner statistics
up to date (db/statistics.py): without them its enqueue read and sorted the whole audience for
every chunk (255 ms instead of 1 ms for the first 1,000 rows of 50,000)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from newsletter.config import load_settings
from newsletter.db import statistics
from newsletter.db.engine import make_engine
from newsletter.db.migrate import upgrade
from newsletter.db.tables import SUBSCRIBERS, SUBSCRIPTIONS
from tests.conftest import Cli, make_workspace, pg_database
from tests.delivery.sender_fixtures import seed, write_issue

LOADED = 300


@pytest.fixture
def pg_workspace(tmp_path: Path) -> Iterator[Path]:
    """A workspace on a PostgreSQL database of its own: no other test's rows in its statistics."""
    with pg_database("nl_stats") as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield make_workspace(tmp_path / "ws", url)


def _tables(engine: Engine) -> dict[str, tuple[float, int, object]]:
    """subscribers' and subscriptions' (estimated rows, changes since analyzed, last analyzed)."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT s.relname, c.reltuples, s.n_mod_since_analyze, s.last_analyze "
            "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
            "WHERE s.relname IN ('subscribers', 'subscriptions')"))
        return {name: (tuples, changed, last) for name, tuples, changed, last in rows}


def _loaded(engine: Engine) -> dict[str, tuple[float, int, object]]:
    """The tables once the loading connection's counts reached the server (it flushes them as
    its backend exits, just after the client closed it)."""
    deadline = time.monotonic() + 10
    while True:
        tables = _tables(engine)
        if all(changed >= LOADED for _t, changed, _l in tables.values()):
            return tables
        assert time.monotonic() < deadline, f"the load's changes never showed: {tables}"
        time.sleep(0.05)


def test_a_send_planned_right_after_a_bulk_load_analyzes_the_audience_once(
        pg_workspace: Path) -> None:
    write_issue(pg_workspace)
    seed(pg_workspace, ["en", "fr", "es"] * (LOADED // 3))  # its own connection, then closed
    engine = make_engine(load_settings(pg_workspace).database_url)
    before = _loaded(engine)
    assert {tuples for tuples, _c, _l in before.values()} == {-1}  # never analyzed

    report = Cli(pg_workspace).json("send", "nov", "--dry-run")

    assert sum(report["messages"].values()) == LOADED
    after = _tables(engine)
    assert {name: (tuples, changed) for name, (tuples, changed, _l) in after.items()} == {
        "subscribers": (LOADED, 0), "subscriptions": (LOADED, 0)}
    # Up to date now: planning again analyzes nothing.
    assert statistics.refresh(engine, (SUBSCRIBERS, SUBSCRIPTIONS)) == []
    Cli(pg_workspace).json("send", "nov", "--dry-run")
    assert _tables(engine) == after
    engine.dispose()

