"""SMTP PIPELINING (RFC 2920): used where the relay offers it, never where it does not, and every
reply still lands on its own delivery. Real servers: Postfix's smtp-sink (which pipelines) and
the aiosmtpd test server with and without PIPELINING in its EHLO; both database engines.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.delivery.sender_fixtures import configure, deliveries, seed, write_issue

SMTP_SINK = "/usr/sbin/smtp-sink"


def _setup(workspace, db_url, port, n=30, **smtp) -> list[str]:
    configure(workspace, db_url, port, **smtp)
    write_issue(workspace)
    return seed(workspace, ["en", "fr", "es"] * (n // 3))


def _copies(server) -> Counter[str]:
    return Counter(rcpts[0] for _s, rcpts, _d in server.messages)


def test_a_relay_offering_pipelining_gets_envelopes_and_message_ends_in_one_write_each_once(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port)
    smtp_server.pipelining = True
    result = run.json("send", "nov", "--yes")
    assert result["sent"] == 30 and result["status"] == "sent"
    assert _copies(smtp_server) == Counter({e: 1 for e in emails})
    assert smtp_server.grouped["envelope"] >= 2  # at least each connection's first message
    assert smtp_server.grouped["end and next envelope"] >= 10


def test_a_relay_without_pipelining_gets_one_command_at_a_time(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port)
    result = run.json("send", "nov", "--yes")
    assert result["sent"] == 30
    assert _copies(smtp_server) == Counter({e: 1 for e in emails})
    assert smtp_server.grouped == Counter()


def test_refused_recipients_in_the_middle_of_a_pipelined_batch_touch_only_themselves(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port, n=15, connections=1)
    gone, greylisted = emails[4], emails[7]
    smtp_server.pipelining = True
    smtp_server.reply_for = lambda rcpt, n: (
        "550 5.1.1 no such mailbox" if rcpt == gone
        else "451 4.7.1 greylisted" if rcpt == greylisted and n == 1 else None)
    result = run.json("send", "nov", "--yes")
    assert (result["sent"], result["failed"], result["deferred"]) == (14, 1, 1)
    rows = deliveries(workspace)
    assert rows[gone][0] == "failed" and rows[gone][2] == "550 5.1.1 no such mailbox"
    assert rows[greylisted][0] == "sent"
    assert _copies(smtp_server) == Counter({e: 1 for e in emails if e != gone})
    # The refusals came back in the middle of pipelined writes, on one connection (the other
    # one is the relay check before the send).
    assert smtp_server.grouped["end and next envelope"] >= 10 and smtp_server.connections == 2


def test_a_421_to_a_pipelined_recipient_reconnects_and_everyone_gets_one_copy(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server.port, n=15, connections=1)
    smtp_server.pipelining = True
    smtp_server.reply_for = lambda rcpt, n: (
        "421 4.3.2 going down" if rcpt == emails[6] and n == 1 else None)
    result = run.json("send", "nov", "--yes")
    assert result["sent"] == 15 and result["status"] == "sent"
    assert _copies(smtp_server) == Counter({e: 1 for e in emails})
    assert smtp_server.connections == 3  # the relay check, the first and the reconnection


# --- Postfix's smtp-sink -------------------------------------------------------------------


@pytest.fixture
def smtp_sink() -> Iterator[Callable[..., tuple[int, Path]]]:
    """Start smtp-sink with extra flags, every message dumped to a file: (port, dump folder)."""
    started: list[subprocess.Popen[bytes]] = []
    folders: list[Path] = []

    def start(*flags: str) -> tuple[int, Path]:
        # Run as root, smtp-sink drops to nobody, who cannot enter pytest's private tmp_path.
        dumps = Path(tempfile.mkdtemp(prefix="nl-sink-"))
        dumps.chmod(0o777)
        folders.append(dumps)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        proc = subprocess.Popen([SMTP_SINK, "-u", "nobody", *flags, "-d", f"{dumps}/msg.",
                                 f"127.0.0.1:{port}", "100"])
        started.append(proc)
        _wait_listening(port)
        return port, dumps

    yield start
    for proc in started:
        proc.terminate()
        proc.wait()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError("smtp-sink did not start")


def _dumped(dumps: Path) -> Counter[str]:
    """Recipients of every message smtp-sink received, from its dump files."""
    found: Counter[str] = Counter()
    for path in dumps.iterdir():
        found.update(re.findall(r"^X-Rcpt-Args: <([^>]*)>", path.read_text("utf-8", "replace"),
                                re.M))
    return found


@pytest.mark.parametrize("flags", [(), ("-p",)], ids=["pipelining", "no-pipelining"])
def test_smtp_sink_gets_every_message_once(run, workspace, db_url, smtp_sink, flags):
    port, dumps = smtp_sink(*flags)
    emails = _setup(workspace, db_url, port, n=60, connections=3)
    result = run.json("send", "nov", "--yes")
    assert result["sent"] == 60 and result["status"] == "sent"
    assert _dumped(dumps) == Counter({e: 1 for e in emails})
    assert {status for status, _l, _r in deliveries(workspace).values()} == {"sent"}
