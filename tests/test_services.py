"""The service object: frozen, one engine and one keyring per process, lazy, closed once.

Every front end (the CLI, the web app, `serve --workers`) goes through it, so what it shares
and what it opens is what every command and request shares and opens.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from newsletter.config import load_settings
from newsletter.errors import NotFoundError
from newsletter.services import Services, build_services
from tests.conftest import Cli
from tests.web.conftest import TestClient


def test_the_service_object_cannot_be_changed_after_it_is_built(services: Services) -> None:
    engine = services.engine
    with pytest.raises(dataclasses.FrozenInstanceError):
        services.engine = engine  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        services.settings = load_settings(services.settings.workspace)  # type: ignore[misc]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The engines `make_engine` opens during the test."""
    from newsletter.db import engine as engines

    seen: list[Any] = []
    real = engines.make_engine

    def counting(url: str, **kwargs: Any) -> Any:
        seen.append(real(url, **kwargs))
        return seen[-1]

    monkeypatch.setattr(engines, "make_engine", counting)
    return seen


def test_every_facade_uses_the_one_engine_of_the_process(
        workspace: Path, opened: list[Any]) -> None:
    services = build_services(load_settings(workspace))
    try:
        assert services.audience.optin.engine is services.engine
        assert list(services.audience.subscribers()) == []
        assert services.outbox.rows() == []
        assert services.bounces.recent(datetime(2000, 1, 1, tzinfo=UTC)) == []
        assert services.sending.summaries() == {}
        assert services.audience is services.audience
        assert len(opened) == 1
    finally:
        services.close()


def test_the_list_import_invite_and_preview_facades_share_the_one_engine(
        workspace: Path, opened: list[Any], tmp_path: Path) -> None:
    services = build_services(load_settings(workspace))
    csv = tmp_path / "people.csv"
    csv.write_text("email,name\na@example.org,A\n", encoding="utf-8")
    try:
        services.lists.add("zines", name="Zines", languages=["en"], default_language="en")
        assert services.audience.import_csv(csv, "zines").committed
        assert services.audience.count_never_asked("zines") == 1
        assert services.audience.invite("zines").queued == 1
        assert services.compose.list_languages("zines") == ["en"]
        assert services.compose.default_language("zines") == "en"
        assert services.compose.default_language("none-such") is None
        with pytest.raises(NotFoundError):
            services.statements.signatures("none-such")
        assert services.compose.recipient("zines", "a@example.org").slots.name == "A"
        assert services.audience.purge_pending(30, dry_run=True).subscriptions == 0
        assert services.lists.get("zines").counts["pending"] == 1
        assert services.lists is services.lists and services.statements is services.statements
        assert opened == [services.engine]
    finally:
        services.close()


def test_the_keyring_is_read_from_the_database_once(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    import newsletter.keyring

    reads: list[str] = []
    real = newsletter.keyring.read_address_key
    monkeypatch.setattr(newsletter.keyring, "read_address_key",
                        lambda conn: reads.append("read") or real(conn))
    from newsletter.audience.listedits import add_list

    add_list(services.engine, slug="news", name="News", languages=["en"], default_language="en")
    key = services.keyring.address_key
    services.audience.add("a@example.org", "news", name="A")
    services.audience.leave("a@example.org", "news")
    assert services.keyring.address_key == key
    assert reads == ["read"]


def _disposals(engine: Any) -> list[Any]:
    seen: list[Any] = []
    event.listen(engine, "engine_disposed", seen.append)
    return seen


def test_close_disposes_the_engines_it_opened_and_leaves_a_shared_one_open(
        services: Services) -> None:
    owned = _disposals(services.engine)
    other = services.sharing(services.settings)
    assert other.engine is services.engine
    other.close()
    assert owned == []
    services.close()
    assert owned == [services.engine]


def test_building_the_service_object_imports_no_database_code(workspace: Path) -> None:
    code = ("import sys; from newsletter.config import load_settings; "
            "from newsletter.services import build_services; "
            f"s = build_services(load_settings({str(workspace)!r})); "
            "s.audience, s.lists, s.compose, s.statements, s.sending, s.outbox, s.bounces, "
            "s.archive; "
            "print('sqlalchemy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


def test_serve_with_workers_hands_them_the_settings_without_touching_the_environment(
        run: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import newsletter.web.server

    given: dict[str, Any] = {}
    monkeypatch.setattr(newsletter.web.server, "run",
                        lambda app, **options: given.update(app=app, **options))
    before = dict(os.environ)
    run("serve", "--workers", "2", "--no-outbox")
    assert dict(os.environ) == before
    assert given["workers"] == 2 and given["factory"] is True
    factory = pickle.loads(pickle.dumps(given["app"]))  # what each worker process receives
    assert factory.outbox_worker is False
    assert factory.settings.database_url == load_settings(run.workspace).database_url
    with TestClient(factory()) as client:
        assert client.get("/healthz").status_code == 200
