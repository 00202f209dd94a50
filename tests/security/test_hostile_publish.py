"""Hostile request paths against the archive `newsletter serve` serves under /archive/.

Each line of tests/data/hostile/publish/archive_paths.txt goes to a real uvicorn server byte
for byte (no client clean-up of `..`); the answer must be a 4xx that holds neither the
workspace's secret nor a system file, and the server must keep answering.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.services import build_services
from tests.conftest import SECRET, drop_newsletter_env, write_config

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile" / "publish" / "archive_paths.txt"
PATHS = [line for line in CORPUS.read_text("utf-8").splitlines()
         if line and not line.startswith("#")]


@pytest.fixture
def served(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The web app under uvicorn, its workspace holding a built site and files around it."""
    import uvicorn

    from newsletter.web import create_app

    drop_newsletter_env(monkeypatch)
    ws = tmp_path / "ws"
    write_config(ws, db_url)
    site = ws / "site"
    (site / "en").mkdir(parents=True)
    (site / "en" / "index.html").write_text("<!doctype html><title>Past issues</title>", "utf-8")
    (site / ".archive-manifest.json").write_text(f'{{"secret": "{SECRET}"}}', "utf-8")
    (site / "en" / ".tmp-half-written").write_text(SECRET, "utf-8")
    (site / "leak").symlink_to(ws / "newsletter.toml")
    (site / "leak-dir").symlink_to(ws, target_is_directory=True)
    settings = load_settings(ws, environ={})
    engine = make_engine(settings.database_url)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(build_services(settings, engine=engine), outbox_worker=False)
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()
    engine.dispose()


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.sqlite_only
def test_no_hostile_path_reads_outside_the_site_or_its_hidden_files(served: int) -> None:
    assert len(PATHS) >= 20
    for path in PATHS:
        status, body = _get(served, path)
        assert 400 <= status < 500, (path, status)
        assert SECRET.encode() not in body and b"root:" not in body, path
    assert _get(served, "/archive/en/") == (200, b"<!doctype html><title>Past issues</title>")
