"""`newsletter serve` runs the app under uvicorn with its outbox worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import write_config
from tests.web.conftest import SmtpServer, free_port, web_config


def test_serve_answers_health_and_sends_the_confirmation_mail_on_its_own(
    tmp_path: Path, db_url: str, smtp: SmtpServer
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("one backend is enough to check the server process")
    from sqlalchemy import text

    from newsletter.db.engine import make_engine

    ws = tmp_path / "ws"
    write_config(ws, db_url, web_config(smtp).replace("outbox_interval = 0", "outbox_interval = 1"))
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
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "newsletter",
            "-w",
            str(ws),
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
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

    config = NoDelayConfig("newsletter.web:app", host="127.0.0.1", port=free_port(), workers=2)
    sock = config.bind_socket()
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        sock.close()
