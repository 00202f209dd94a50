"""`newsletter capture`: every message lands in the Maildir and the summary counts it right."""

from __future__ import annotations

import asyncio
import mailbox
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.delivery.capture import CaptureError, CaptureServer, summarize_maildir
from newsletter.delivery.message import MessageBuilder, Recipient
from newsletter.tokens import Signer

SECRET = "test-secret-key-0123456789"
PEOPLE = [("ana@example.net", "Ana Núñez", "es"), ("bea@example.net", "Béatrice", "fr"),
          ("carl@example.net", "Carl", "en"), ("dina@example.net", "دينا", "fr")]


def messages_for(settings: Any, fake_edition: Any, issue: str = "2026-11-coalition-update"):
    """(envelope sender, rcpt, bytes) per person, each in their language."""
    subjects = {"en": "Coalition news", "fr": "Nouvelles de la coalition",
                "es": "Noticias de la coalición"}
    out = []
    for n, (email, name, lang) in enumerate(PEOPLE, 1):
        builder = MessageBuilder(
            settings=settings, edition=fake_edition(language=lang, subject=subjects[lang]),
            issue_slug=issue, list_id=1, list_slug="news", list_name="News",
            signer=Signer(SECRET))
        sender, data = builder.build(Recipient(n, n, email, name, {}))
        out.append((sender, email, data))
    return out


async def deliver(host: str, port: int, batch: list[tuple[str, str, bytes]]) -> None:
    async with aiosmtplib.SMTP(hostname=host, port=port, timeout=10) as smtp:
        for sender, rcpt, data in batch:
            await smtp.sendmail(sender, [rcpt], data)


def test_capture_stores_each_message_and_reports_it(
        tmp_path: Path, message_settings: Any, fake_edition: Any) -> None:
    seen = []
    batch = messages_for(message_settings, fake_edition)
    with CaptureServer(tmp_path / "maildir", port=0, on_message=seen.append) as server:
        asyncio.run(deliver(server.host, server.port, batch))
    assert server.count == 4
    box = mailbox.Maildir(tmp_path / "maildir", create=False)
    stored = {m["Delivered-To"]: m for m in box}
    assert set(stored) == {p[0] for p in PEOPLE}
    sender, rcpt, data = batch[0]
    raw = box.get_bytes(seen[0].keys[0])
    assert raw == f"Return-Path: <{sender}>\r\nDelivered-To: {rcpt}\r\n".encode() + data
    line = seen[0].line()
    assert "[es]" in line and "ana@example.net" in line and "Noticias de la coalición" in line
    assert "KB" in line and sender in line


def test_summary_counts_per_language_and_recipient(
        tmp_path: Path, message_settings: Any, fake_edition: Any) -> None:
    with CaptureServer(tmp_path / "md", port=0) as server:
        asyncio.run(deliver(server.host, server.port, messages_for(message_settings, fake_edition)))
    result = summarize_maildir(tmp_path / "md")
    assert result["messages"] == 4 and result["recipients"] == 4
    assert result["by_language"] == {"en": 1, "es": 1, "fr": 2}
    assert result["by_issue"] == {"2026-11-coalition-update": 4}
    assert result["by_subject"]["Nouvelles de la coalition"] == 2
    assert result["by_recipient"]["dina@example.net"] == 1
    assert result["duplicates"] == []


def test_summary_flags_a_recipient_who_got_an_issue_twice(
        tmp_path: Path, message_settings: Any, fake_edition: Any) -> None:
    batch = messages_for(message_settings, fake_edition)
    other_issue = messages_for(message_settings, fake_edition, issue="2026-12-update")
    with CaptureServer(tmp_path / "md", port=0) as server:
        asyncio.run(deliver(server.host, server.port, batch + other_issue + batch[1:2]))
    result = summarize_maildir(tmp_path / "md")
    assert result["messages"] == 9
    assert result["duplicates"] == ["bea@example.net"]
    assert result["by_issue"] == {"2026-11-coalition-update": 5, "2026-12-update": 4}


def test_capture_keeps_up_with_a_few_hundred_messages(
        tmp_path: Path, message_settings: Any, fake_edition: Any) -> None:
    sender, _rcpt, data = messages_for(message_settings, fake_edition)[0]
    batch = [(sender, f"r{i}@example.net", data) for i in range(300)]
    started = time.monotonic()
    with CaptureServer(tmp_path / "md", port=0) as server:
        asyncio.run(deliver(server.host, server.port, batch))
    assert summarize_maildir(tmp_path / "md")["messages"] == 300
    # A generous bound, only to catch a stall; throughput is measured in bench/.
    assert time.monotonic() - started < 60


def test_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(CaptureError, match=f"cannot listen on 127.0.0.1:{port}"):
            CaptureServer(tmp_path / "md", port=port).start()
        assert time.monotonic() - started < 4  # aiosmtpd alone would wait 5 s to notice


def test_summary_of_a_missing_maildir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="is not a Maildir"):
        summarize_maildir(tmp_path / "nothing")


# --- The CLI ------------------------------------------------------------------------------

def _workspace(tmp_path: Path, port: int = 8025) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "newsletter.toml").write_text(
        f'[newsletter]\nsecret_key = "{SECRET}"\n\n[capture]\nport = {port}\n'
        'maildir = "inbox"\n', encoding="utf-8")
    return ws


def test_cli_summary_json_and_clear(
        tmp_path: Path, message_settings: Any, fake_edition: Any) -> None:
    ws = _workspace(tmp_path)
    with CaptureServer(ws / "inbox", port=0) as server:
        asyncio.run(deliver(server.host, server.port, messages_for(message_settings, fake_edition)))
    runner = CliRunner()
    result = runner.invoke(cli, ["-w", str(ws), "capture", "summary", "--json"])
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.output)
    assert data["by_language"] == {"en": 1, "es": 1, "fr": 2}
    text = runner.invoke(cli, ["-w", str(ws), "capture", "summary"]).output
    assert "4 message(s) to 4 recipient(s)" in text and "fr" in text
    assert "No recipient received more than one message." in text
    cleared = runner.invoke(cli, ["-w", str(ws), "capture", "clear"])
    assert "Removed 4 message(s)." in cleared.output
    assert summarize_maildir(ws / "inbox")["messages"] == 0


def test_cli_summary_without_maildir_fails_in_one_line(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    result = CliRunner().invoke(cli, ["-w", str(ws), "capture", "summary"])
    assert result.exit_code == 1
    assert "is not a Maildir" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_cli_serves_prints_a_line_per_message_and_stops_cleanly(
        tmp_path: Path, message_settings: Any, fake_edition: Any, stop: int) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ws = _workspace(tmp_path, port)
    code = "from newsletter.cli.main import cli; cli(prog_name='newsletter')"
    proc = subprocess.Popen([sys.executable, "-c", code, "-w", str(ws), "capture"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        banner = proc.stderr.readline()
        assert f"Capturing mail on 127.0.0.1:{port}" in banner, banner
        sender, rcpt, data = messages_for(message_settings, fake_edition)[1]
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail(sender, [rcpt], data)
        line = proc.stdout.readline()
        assert "[fr]" in line and "bea@example.net" in line and "Nouvelles" in line
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Stopped: 1 message(s) captured." in err and "Traceback" not in err
    assert summarize_maildir(ws / "inbox")["messages"] == 1


def test_messages_with_raw_8bit_headers_are_stored_and_summarized(tmp_path: Path) -> None:
    raw = (b"From: x@example.org\r\nSubject: caf\xe9 cr\xe8me\r\nContent-Language: fr\r\n"
           b"\r\nbody\r\n")
    seen = []
    with CaptureServer(tmp_path / "md", port=0, on_message=seen.append) as server, \
            smtplib.SMTP(server.host, server.port, timeout=10) as smtp:
        smtp.sendmail("x@example.org", ["y@example.org"], raw)
    assert "caf" in seen[0].line() and seen[0].language == "fr"
    result = summarize_maildir(tmp_path / "md")
    assert result["messages"] == 1 and result["by_language"] == {"fr": 1}
    assert next(iter(result["by_subject"])).startswith("caf")
