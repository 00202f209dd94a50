"""`newsletter serve` runs the app under uvicorn with its outbox worker."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import clean_env, write_config
from tests.web.conftest import SmtpServer, web_config


def _reported_port(server: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """The port uvicorn bound, from its "Uvicorn running on" line (it was told port 0)."""
    assert server.stderr is not None
    found: list[int] = []
    seen: list[str] = []

    def read() -> None:
        assert server.stderr is not None
        for raw in server.stderr:
            line = raw.decode(errors="replace")
            seen.append(line)
            match = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            if match:
                found.append(int(match.group(1)))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert found, f"the server reported no port in {timeout:.0f}s: {''.join(seen)}"
    return found[0]


@pytest.mark.sqlite_only  # one engine is enough to check the server process
def test_serve_answers_health_and_sends_the_confirmation_mail_on_its_own(
    tmp_path: Path, db_url: str, smtp: SmtpServer
) -> None:
    from sqlalchemy import text

    from newsletter.db.engine import make_engine

    ws = tmp_path / "ws"
    config = web_config(smtp).replace("outbox_interval = 0", "outbox_interval = 1\nport = 0")
    write_config(ws, db_url, config)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO lists (slug, name, default_language, languages, opt_in, public, "
                "description, created_at) VALUES ('news', 'News', 'en', '[\"en\"]', 'double', "
                "1, '', CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()
    env = clean_env()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "newsletter",
            "-w",
            str(ws),
            "serve",
            "--log-level",
            "info",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{_reported_port(server)}"
        for _ in range(100):
            try:
                health = httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError(server.stderr.read1().decode() if server.stderr else "no server")
        assert health.json()["database"] == "ok"
        httpx.post(f"{base}/subscribe/news", data={"email": "srv@example.org"}, timeout=5)
        for _ in range(50):  # the worker is woken by the request; no `outbox send` needed
            if smtp.messages:
                break
            time.sleep(0.1)
        assert [m["To"] for m in smtp.messages] == ["srv@example.org"]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_several_workers_share_a_socket_without_nagle_delays() -> None:
    import socket

    from newsletter.web.server import NoDelayConfig

    config = NoDelayConfig("newsletter.web:app", host="127.0.0.1", port=0, workers=2)
    sock = config.bind_socket()
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        sock.close()
