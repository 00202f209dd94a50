"""Shared fixtures: a workspace, a real database (SQLite and PostgreSQL), a CLI runner.

Every test that takes `services` or `db_url` runs once on SQLite and once on PostgreSQL
(`@pytest.mark.sqlite_only` keeps a test to SQLite when the engine does not matter to it;
`@pytest.mark.postgresql_only` keeps one to PostgreSQL, for code that only PostgreSQL runs).
PostgreSQL: 127.0.0.1:5432, trust auth. Each pytest run creates its own database so parallel
runs never see each other's rows.

Real parts (PostgreSQL, Chromium, Playwright, `cryptography`) may be missing on a laptop: their
tests skip there. With NEWSLETTER_TEST_REQUIRE_ALL=1 (set by .ci/run, and implied by CI=true)
a missing part fails its tests, and so does any other skip: the suite either runs whole or fails.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
from click.testing import CliRunner
from sqlalchemy import MetaData, create_engine, text

from newsletter.cli.main import cli
from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.migrate import upgrade
from newsletter.services import Services, build_services

# Compiled templates (compose/layout.py) go to a cache folder of this test run, not ~/.cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="nl-test-cache-")

PG_ADMIN_URL = os.environ.get(
    "NEWSLETTER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = os.environ.get("NEWSLETTER_TEST_BACKENDS", "sqlite,postgresql").split(",")
SECRET = "test-secret-key-0123456789"
REQUIRE_ALL = (os.environ.get("NEWSLETTER_TEST_REQUIRE_ALL") == "1"
               or os.environ.get("CI") == "true")
CHROMIUM = "/usr/bin/chromium"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without NEWSLETTER_* settings, plus `extra`: for a
    `newsletter` subprocess that must read its workspace's newsletter.toml, not the caller's
    environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(extra)
    return env


def drop_newsletter_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every NEWSLETTER_* variable for this test, so only its workspace's file counts."""
    for key in [k for k in os.environ if k.startswith("NEWSLETTER_")]:
        monkeypatch.delenv(key)


def missing(part: str) -> NoReturn:
    """A real part is absent: skip here, fail when every part is required."""
    if REQUIRE_ALL:
        pytest.fail(f"{part} (NEWSLETTER_TEST_REQUIRE_ALL=1: every real part must be present)",
                    pytrace=False)
    pytest.skip(part)


def require_module(name: str) -> ModuleType:
    """Import an optional test dependency, or report it missing."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"{name} is not installed ({exc})")


def require_chromium() -> str:
    """Path of the Debian Chromium that Playwright drives (never a downloaded browser)."""
    if not os.path.exists(CHROMIUM):
        missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM


# Debian's Chromium on a closed network: no sandbox as root, no background calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser), closed after use."""
    sync_api = require_module("playwright.sync_api")
    executable = require_chromium()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def require_file(path: Path, how: str) -> Path:
    """A file a test reads from outside the repository (a tool, a cached package), or missing."""
    if not path.is_file():
        missing(f"{path} is missing ({how})")
    return path


def pytest_configure(config: pytest.Config) -> None:
    if REQUIRE_ALL and set(BACKENDS) != {"sqlite", "postgresql"}:
        raise pytest.UsageError("NEWSLETTER_TEST_REQUIRE_ALL=1 runs both engines: unset "
                                f"NEWSLETTER_TEST_BACKENDS (it is {','.join(BACKENDS)!r})")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the PostgreSQL half of tests marked sqlite_only, and the SQLite half of those
    marked postgresql_only (deselected, not skipped)."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("db_url") if callspec else None
        only_sqlite = item.get_closest_marker("sqlite_only") is not None
        only_pg = item.get_closest_marker("postgresql_only") is not None
        wrong = (only_sqlite and backend not in (None, "sqlite")
                 or only_pg and backend not in (None, "postgresql"))
        (drop if wrong else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    slow_first(items)


def slow_first(items: list[pytest.Item]) -> None:
    """Files with the most tests marked slow run first, the rest in their usual order.

    scripts/test.sh hands whole files to two processes (`--dist loadfile`) in this order
    (`--no-loadscope-reorder`); a few long files left for the end would keep one core busy
    while the other sits idle."""
    slow: Counter[str] = Counter(item.nodeid.split("::")[0] for item in items
                                 if item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: -slow[item.nodeid.split("::")[0]])


def _as_failure(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (f"skipped, but NEWSLETTER_TEST_REQUIRE_ALL=1 requires every test to "
                       f"run: {reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """With every part required, a skip (however it was raised) is a failure."""
    report = yield
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        _as_failure(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """The same for a whole module skipped at import (pytest.importorskip at the top)."""
    report = yield
    if REQUIRE_ALL and report.skipped:
        _as_failure(report)
    return report


@pytest.fixture(autouse=True)
def example_events_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """`issue check` in this process sees the shipped example issue's events
    (issues/2026-11-coalition-update) still ahead, as on the day it was written, whatever
    today's date: its checks must stay clean for the tests that send it."""
    from datetime import UTC, datetime

    from newsletter.compose import eventrules

    monkeypatch.setattr(eventrules, "current_time", lambda: datetime(2026, 11, 20, tzinfo=UTC))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (cheaper than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@contextmanager
def pg_database(prefix: str) -> Iterator[str]:
    """URL of a new, empty PostgreSQL database, dropped afterwards (missing() without a server).

    Its commits do not wait for the WAL flush (synchronous_commit = off, for this database
    only): a commit is visible to every other connection at once all the same, and what it
    gives up, the last commits surviving a crash of the PostgreSQL server itself, no test
    provokes (they kill workers, never the server). A flush took about 10 ms on the test
    machine, paid by every commit of every PostgreSQL test and worker; production keeps it on
    (docs/operations.md)."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    except Exception as exc:
        admin.dispose()
        missing(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {str(exc).splitlines()[0]}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database for this pytest run."""
    with pg_database("nl_test") as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def pg_emptying(pg_url: str) -> Iterator[Callable[[], None]]:
    """Empty the test database: a DELETE per table, children first, and each table's id
    sequence back to 1, worked out once. On tables of a few rows this takes milliseconds, where
    reflecting the schema and a TRUNCATE (new files, fsynced) took a quarter to half a second
    each, for each PostgreSQL test. It runs in one round trip on a connection kept for the whole
    run (pinged first: a test may drop every connection), not a new one per test."""
    engine = make_engine(pg_url)
    meta = MetaData()
    meta.reflect(engine)
    # The keyring's address key stays, as it does in a real database.
    tables = [t for t in reversed(meta.sorted_tables) if t.name not in ("alembic_version",
                                                                        "keyring")]
    statements = [f'DELETE FROM "{t.name}"' for t in tables]
    with engine.connect() as conn:
        for table in tables:
            for column in table.columns:
                sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                        {"t": f'"{table.name}"', "c": column.name}).scalar()
                if sequence:
                    statements.append(f"SELECT setval('{sequence}', 1, false)")
    emptying = "; ".join(statements)

    def empty() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(emptying)

    yield empty
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database: SQLite file or PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "newsletter.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    request.getfixturevalue("pg_emptying")()
    return request.getfixturevalue("pg_url")


def address_key(db_url: str) -> str:
    """The test database's address key (the key suppression hashes are made with)."""
    from newsletter.keyring import read_address_key

    engine = make_engine(db_url)
    with engine.connect() as conn:
        key = read_address_key(conn)
    engine.dispose()
    return key


def write_config(workspace: Path, db_url: str, extra: str = "") -> None:
    """Write a newsletter.toml for tests."""
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "newsletter.toml").write_text(
        f"""send = {{ publish_check = false }}  # tests of publishing turn it on
[newsletter]
name = "Test Network News"
base_url = "https://news.example.org"
from_address = "news@example.org"
from_name = "Test Network"
secret_key = "{SECRET}"

[database]
url = "{db_url}"
{extra}
""",
        encoding="utf-8",
    )


def make_workspace(ws: Path, db_url: str) -> Path:
    """A workspace folder at `ws` with newsletter.toml pointing at `db_url`."""
    for sub in ("templates", "issues", "subscribers"):
        (ws / sub).mkdir(parents=True, exist_ok=True)
    write_config(ws, db_url)
    return ws


@pytest.fixture
def workspace(tmp_path: Path, db_url: str) -> Path:
    """A workspace folder with newsletter.toml pointing at the test database."""
    return make_workspace(tmp_path / "ws", db_url)


@pytest.fixture
def services(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Services:
    """Services for the test workspace; environment NEWSLETTER_* variables are ignored."""
    drop_newsletter_env(monkeypatch)
    svc = build_services(load_settings(workspace))
    yield svc
    svc.close()


class Cli:
    """Run `newsletter` in-process against the test workspace."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, ok: bool = True):
        result = self.runner.invoke(
            cli, ["-w", str(self.workspace), *args], input=input, catch_exceptions=True
        )
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        if ok and result.exit_code != 0:
            raise AssertionError(f"exit {result.exit_code}: {result.output}")
        return result

    def json(self, *args: str):
        return json.loads(self(*args, "--json").output)


@pytest.fixture
def run(workspace: Path, services: Services) -> Cli:
    """Invoke the CLI in the test workspace (one database backend per parametrization)."""
    return Cli(workspace)


def akey(services: Services) -> str:
    """The database's address key (hashes suppressed addresses)."""
    return services.keyring.address_key
