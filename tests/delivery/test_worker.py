"""`newsletter worker` in an empty folder: it sends what `send --detach` queued, builds the very
message `newsletter send` builds in the workspace, registers itself, and stops cleanly."""

from __future__ import annotations

import re
import shutil
import signal
import time
from email import message_from_bytes, policy

import pytest

from tests.conftest import Cli
from tests.delivery.sender_fixtures import configure, deliveries, seed, write_issue
from tests.delivery.worker_fixtures import (
    Workers,
    counts,
    issue_status,
    live_workers,
    query,
    wait_until,
    worker_env,
)

IDENTITY = """
[newsletter]
name = { en = "Coalition News", fr = "Nouvelles de la coalition" }
from_name = { en = "The Coalition", fr = "La Coalition" }
from_address = "letters@coalition.example"
reply_to = "desk@coalition.example"
list_id_domain = "lists.coalition.example"
message_id_domain = "mid.coalition.example"
sender_id = "coalition"
base_url = "https://coalition.example"

[bounces]
domain = "returns.coalition.example"
local_part = "back"

[archive]
base_url = "https://archive.coalition.example"
"""


def _workspace_with_identity(workspace, db_url, port) -> None:
    configure(workspace, db_url, port)
    toml = workspace / "newsletter.toml"
    text = toml.read_text().replace("[newsletter]\n", "[old]\n", 1)
    text = re.sub(r"\[old\]\n(.*\n)*?(?=\[database\])", "", text)
    secret = 'secret_key = "test-secret-key-0123456789"\n'
    toml.write_text(text + IDENTITY.replace('sender_id = "coalition"\n',
                                            'sender_id = "coalition"\n' + secret))
    write_issue(workspace, languages=("en", "fr"))


def _normal(data: bytes) -> bytes:
    """The message without what differs between two builds of it: Date, the random part of
    Message-ID and the MIME boundary."""
    data = re.sub(rb"Date: [^\r]*\r\n", b"", data)
    data = re.sub(rb"Message-ID: <(\d+)\.[0-9a-f]+@", rb"Message-ID: <\1.X@", data)
    return re.sub(rb"=_nl_[0-9a-f]+", b"=_nl_X", data)


@pytest.mark.sqlite_only
def test_a_worker_in_an_empty_folder_sends_the_message_send_builds_in_the_workspace(
        tmp_path, workspace, db_url, smtp_server, sqlite_template):
    _workspace_with_identity(workspace, db_url, smtp_server.port)
    seed(workspace, ["en", "fr"], list_languages=("en", "fr"))
    Cli(workspace)("send", "nov", "--yes")
    local = {rcpts[0]: (sender, data) for sender, rcpts, data in smtp_server.messages}
    assert len(local) == 2
    smtp_server.messages.clear()
    # The same workspace on a second database: same ids, so the same links and tokens.
    other = tmp_path / "other"
    shutil.copytree(workspace, other, ignore=shutil.ignore_patterns("*.db*"))
    second = tmp_path / "second.db"
    shutil.copy(sqlite_template, second)
    toml = other / "newsletter.toml"
    toml.write_text(toml.read_text().replace(db_url, f"sqlite:///{second}"))
    seed(other, ["en", "fr"], list_languages=("en", "fr"))
    out = Cli(other)("send", "nov", "--yes", "--detach").output
    assert "2 deliveries queued" in out and "newsletter worker" in out
    assert not smtp_server.messages
    workers = Workers(tmp_path / "hosts", worker_env(f"sqlite:///{second}", smtp_server.port))
    proc = workers.start("--until-idle")
    proc.wait(timeout=60)
    output = workers.output(proc)
    assert proc.returncode == 0, output
    remote = {rcpts[0]: (sender, data) for sender, rcpts, data in smtp_server.messages}
    assert set(remote) == set(local)
    for rcpt, (sender, data) in remote.items():
        assert sender == local[rcpt][0]
        assert sender.endswith("@returns.coalition.example") and sender.startswith("back+")
        assert _normal(data) == _normal(local[rcpt][1])
        msg = message_from_bytes(data, policy=policy.default)
        assert msg["From"].addresses[0].addr_spec == "letters@coalition.example"
        assert "archive.coalition.example" in msg.get_body(("plain",)).get_content()
    assert issue_status(f"sqlite:///{second}") == "sent"
    stored = str(query(f"sqlite:///{second}", "SELECT data FROM issues"))
    assert "letters@coalition.example" in stored and "test-secret-key" not in stored


@pytest.mark.slow
def test_a_detached_send_is_sent_by_the_worker_which_then_leaves_the_registry(
        tmp_path, workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    emails = seed(workspace, ["en", "fr", "es", None] * 10)
    result = run.json("send", "nov", "--yes", "--detach")
    assert result["status"] == "sending" and result["queued"] == 40
    workers = Workers(tmp_path / "hosts", worker_env(db_url, smtp_server.port))
    proc = workers.start("--until-idle", "--batch-size", "7")
    proc.wait(timeout=60)
    output = workers.output(proc)
    assert proc.returncode == 0, output
    assert "sent 40" in output
    assert sorted(r[0] for _s, r, _d in smtp_server.messages) == sorted(emails)
    assert {s for s, _l, _r in deliveries(workspace).values()} == {"sent"}
    assert issue_status(db_url) == "sent"
    assert live_workers(db_url) == 0


@pytest.mark.slow
def test_sigterm_exits_zero_within_seconds_and_leaves_no_claim(
        tmp_path, workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en"] * 3000)
    run("send", "nov", "--yes", "--detach")
    workers = Workers(tmp_path / "hosts", worker_env(db_url, smtp_server.port,
                                                     smtp_rate=300))
    proc = workers.start("--batch-size", "50")
    wait_until(lambda: live_workers(db_url) == 1, 30, "the worker to register")
    wait_until(lambda: smtp_server.wait_for(100, timeout=0.1), 60, "100 messages")
    claimed = query(db_url, "SELECT count(*) FROM deliveries WHERE worker IS NOT NULL")[0][0]
    assert claimed > 0
    proc.send_signal(signal.SIGTERM)
    began = time.monotonic()
    proc.wait(timeout=15)
    output = workers.output(proc)
    assert proc.returncode == 0, output
    assert time.monotonic() - began < 5
    left = counts(db_url)
    assert query(db_url, "SELECT count(*) FROM deliveries WHERE worker IS NOT NULL")[0][0] == 0
    assert left.get("sending", 0) == 0 and left.get("unknown", 0) == 0
    assert left["sent"] == len(smtp_server.messages) and 0 < left["sent"] < 3000
    assert live_workers(db_url) == 0
    assert issue_status(db_url) == "sending"


def test_workers_lists_live_workers_and_shows_or_prunes_the_silent_ones(
        tmp_path, workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    from datetime import timedelta

    from sqlalchemy import insert

    from newsletter.db.engine import make_engine
    from newsletter.db.models import utcnow
    from newsletter.db.tables import WORKERS

    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(insert(WORKERS).values(
            name="elsewhere:4242:t1:abcdef", host="elsewhere", pid=4242,
            started_at=utcnow(), heartbeat_at=utcnow() - timedelta(seconds=20), sent=10,
            rate=0.0))
    engine.dispose()
    workers = Workers(tmp_path / "hosts", worker_env(db_url, smtp_server.port))
    try:
        proc = workers.start()
        wait_until(lambda: live_workers(db_url) == 2, 30, "the worker to register")
        listed = run.json("workers")["workers"]
        assert [(w["pid"], w["alive"]) for w in listed] == [(4242, False), (proc.pid, True)]
        text = run("workers").output
        assert "1 live worker(s), 1 gone" in text and "elsewhere" in text
        assert run.json("workers", "--prune")["pruned"] == 1
        assert [w["pid"] for w in run.json("workers")["workers"]] == [proc.pid]
    finally:
        workers.stop_all()
    assert run.json("workers")["workers"] == []


@pytest.mark.sqlite_only
def test_a_worker_facing_a_dead_relay_says_so_in_one_line_and_sends_nothing(
        tmp_path, workspace, db_url, smtp_server, unused_port, run):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en", "fr"])
    run("send", "nov", "--yes", "--detach")
    workers = Workers(tmp_path / "hosts", worker_env(db_url, unused_port,
                                                     smtp_connections=1))
    proc = workers.start("--until-idle")
    proc.wait(timeout=60)
    output = workers.output(proc)
    assert proc.returncode == 1, output
    assert f"error: issue nov: stopped sending: the SMTP relay at 127.0.0.1:{unused_port}" \
        in output
    assert "Traceback" not in output
    assert counts(db_url) == {"queued": 2}
    assert issue_status(db_url) == "sending" and live_workers(db_url) == 0


@pytest.mark.sqlite_only
def test_a_worker_without_a_database_url_says_so_and_creates_nothing(tmp_path, db_url):
    env = worker_env(db_url, 25)
    del env["NEWSLETTER_DATABASE_URL"]
    workers = Workers(tmp_path / "hosts", env)
    proc = workers.start("--until-idle")
    proc.wait(timeout=30)
    output = workers.output(proc)
    assert proc.returncode == 1
    assert "set NEWSLETTER_DATABASE_URL" in output and "Traceback" not in output
    assert not any((tmp_path / "hosts" / "host0").iterdir())


def test_the_worker_sends_the_system_mails_of_the_outbox(tmp_path, db_url, smtp_server):
    from newsletter.db.engine import make_engine
    from newsletter.outbox import enqueue

    engine = make_engine(db_url)
    for i in range(3):
        enqueue(engine, "confirm", f"new{i}@example.org", "news@example.org",
                f"Subject: confirm {i}\r\n\r\nClick.\r\n".encode())
    engine.dispose()
    workers = Workers(tmp_path / "hosts", worker_env(db_url, smtp_server.port))
    proc = workers.start("--until-idle")
    proc.wait(timeout=60)
    output = workers.output(proc)
    assert proc.returncode == 0, output
    assert "system mails sent 3" in output
    assert sorted(r[0] for _s, r, _d in smtp_server.messages) == [
        f"new{i}@example.org" for i in range(3)]
    assert query(db_url, "SELECT DISTINCT status FROM outbox") == [("sent",)]
