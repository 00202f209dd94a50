"""Several relays as every worker sees them (delivery/relayview.py): a relay one worker took out
is left by the others without trying it, an hourly limit holds across workers and runs, and
`newsletter doctor` and `newsletter workers` show each relay.

Workers are real `newsletter worker` processes in empty folders (worker_fixtures.py); the
relays are aiosmtpd servers in this process; SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import timedelta

import pytest

from newsletter.db.engine import make_engine
from newsletter.db.models import utcnow
from newsletter.delivery.relayview import relays_out, take_out
from tests.delivery.sender_fixtures import configure, copies, seed, write_issue
from tests.delivery.worker_fixtures import (
    Workers,
    issue_status,
    live_workers,
    wait_until,
    worker_env,
)
from tests.doctor.conftest import dns_server  # noqa: F401 - the fixture

BUSY = "421 4.3.2 too busy, closing"


def _relays(*relays: tuple[str, object, dict]) -> str:
    """NEWSLETTER_SMTP_RELAYS for (name, server, options)."""
    return json.dumps([{"name": name, "host": "127.0.0.1", "port": server.port,  # type: ignore[attr-defined]
                        "connections": 2, **options} for name, server, options in relays])


def _finish(workers: Workers, *args: str, count: int = 1) -> None:
    """Start `count` workers with --until-idle together and wait until every one has exited 0."""
    procs = [workers.start("--until-idle", *args) for _ in range(count)]
    for proc in procs:
        proc.wait(timeout=120)
    assert all(p.returncode == 0 for p in procs), workers.outputs()


def _out(db_url: str) -> dict[str, str]:
    engine = make_engine(db_url)
    try:
        return {o.name: o.reason for o in relays_out(engine)}
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_relay_one_worker_took_out_is_left_by_the_next_worker_without_trying_it(
        tmp_path, workspace, db_url, smtp_server_factory, run):
    a, b = smtp_server_factory(), smtp_server_factory()
    a.reply_for = lambda rcpt, n: BUSY
    configure(workspace, db_url, b.port)  # for `send --detach`, which sends nothing
    for slug in ("nov", "dec"):
        write_issue(workspace, slug)
    emails = seed(workspace, ["en", "fr", "es"] * 10)
    workers = Workers(tmp_path / "hosts", worker_env(
        db_url, b.port, smtp_relays=_relays(("a", a, {"weight": 5}), ("b", b, {})),
        smtp_cooldown=600))
    run("send", "nov", "--yes", "--detach")
    _finish(workers)  # worker A: a answers 421 until A takes it out; b sends everything
    tried, connected = sum(a.rcpt_attempts.values()), a.connections
    assert tried >= 1 and a.messages == [] and copies(b) == Counter({e: 1 for e in emails})
    assert _out(db_url) == {"a": f"answered {BUSY}"}
    run("send", "dec", "--yes", "--detach")
    _finish(workers)  # worker B: a is out for everyone, so B never even connects to it
    assert (sum(a.rcpt_attempts.values()), a.connections) == (tried, connected)
    assert copies(b) == Counter({e: 2 for e in emails}) and issue_status(db_url, "dec") == "sent"
    assert "SMTP relay a is out until" in workers.outputs()


@pytest.mark.slow
def test_a_running_worker_leaves_a_relay_another_host_took_out_within_two_seconds(
        tmp_path, workspace, db_url, smtp_server_factory, run):
    a, b = smtp_server_factory(), smtp_server_factory()
    configure(workspace, db_url, b.port)
    write_issue(workspace)
    emails = seed(workspace, ["en", "fr"] * 90)
    workers = Workers(tmp_path / "hosts", worker_env(
        db_url, b.port, smtp_relays=_relays(("a", a, {}), ("b", b, {})), smtp_rate=25))
    try:
        workers.start()
        wait_until(lambda: live_workers(db_url) == 1, 30, "the worker to register")
        run("send", "nov", "--yes", "--detach")
        wait_until(lambda: len(a.messages) >= 10, 30, "a to carry some of the mail")
        engine = make_engine(db_url)  # as the worker of another host that saw a fail does
        take_out(engine, "a", utcnow() + timedelta(seconds=600), "answered 421 elsewhere")
        engine.dispose()
        time.sleep(2.5)
        carried = len(a.messages)
        wait_until(lambda: issue_status(db_url) == "sent", 60, "the issue to be sent", 0.2)
    finally:
        workers.stop_all()
    assert len(a.messages) == carried < 150  # nothing reached a after two and a half seconds
    assert copies(a, b) == Counter({e: 1 for e in emails})
    assert "SMTP relay a is out until" in workers.outputs()
    assert "answered 421 elsewhere" in workers.outputs()


@pytest.mark.slow
def test_an_hourly_limit_holds_across_two_workers_and_the_next_run_until_the_hour_passes(
        tmp_path, workspace, db_url, smtp_server_factory, run):
    a, b = smtp_server_factory(), smtp_server_factory()
    clock = tmp_path / "clock"
    clock.write_text("2030-01-07T10:20:00+00:00")
    configure(workspace, db_url, b.port)
    for slug in ("nov", "dec", "jan", "feb"):
        write_issue(workspace, slug)
    seed(workspace, ["en", "fr"] * 30)
    workers = Workers(tmp_path / "hosts", worker_env(
        db_url, b.port, smtp_relays=_relays(("a", a, {"hourly": 10, "weight": 9}), ("b", b, {})),
        clock_file=clock))
    run("send", "nov", "--yes", "--detach")
    _finish(workers, "--batch-size", "5", count=2)  # each worker alone would send 10 through a
    first = len(a.messages)
    assert 0 < first <= 10 and len(b.messages) == 60 - first
    clock.write_text("2030-01-07T10:50:00+00:00")  # the same hour: at most what a has left
    run("send", "dec", "--yes", "--detach")
    _finish(workers)
    second = len(a.messages)
    assert first <= second <= 10 and len(b.messages) == 120 - second
    clock.write_text("2030-01-07T11:30:00+00:00")  # half of 10:00-11:00 still counts
    run("send", "jan", "--yes", "--detach")
    _finish(workers)
    assert second < len(a.messages) <= second + 10 - second // 2
    clock.write_text("2030-01-07T12:05:00+00:00")  # the 10 o'clock hour is gone
    before = len(a.messages)
    run("send", "feb", "--yes", "--detach")
    _finish(workers)
    assert before < len(a.messages) and len(a.messages) + len(b.messages) == 240


def test_doctor_and_workers_show_each_relay_and_the_one_out(
        workspace, db_url, smtp_server_factory, unused_port, dns_server, run):  # noqa: F811
    a = smtp_server_factory()
    configure(workspace, db_url, a.port)
    toml = workspace / "newsletter.toml"
    relays = "".join(f'\n[[smtp.relays]]\nname = "{name}"\nhost = "127.0.0.1"\nport = {port}\n'
                     for name, port in (("a", a.port), ("b", unused_port)))
    toml.write_text(toml.read_text().replace("https://news.example.org",
                                             f"http://127.0.0.1:{unused_port}") + relays)
    dns = dns_server([])
    doctor = ["doctor", "--resolver", dns.address, "--timeout", "1", "--json"]
    checks = {c["name"]: c for c in json.loads(run(*doctor, ok=False).output)["checks"]}
    assert checks["smtp-relay:a"]["status"] == "ok"
    assert checks["smtp-relay:a"]["detail"].startswith(f"127.0.0.1:{a.port} (none) greets with 220")
    assert checks["smtp-relay:b"]["status"] == "fail"
    assert f"127.0.0.1:{unused_port} (none) unreachable" in checks["smtp-relay:b"]["detail"]
    until = utcnow() + timedelta(seconds=300)
    engine = make_engine(db_url)
    take_out(engine, "a", until, f"answered {BUSY}")
    engine.dispose()
    checks = {c["name"]: c for c in json.loads(run(*doctor, ok=False).output)["checks"]}
    assert checks["smtp-relay:a"]["status"] == "warn"
    assert checks["smtp-relay:a"]["detail"].startswith(
        f"127.0.0.1:{a.port} (none) out of every send until {until:%Y-%m-%d %H:%M:%S} UTC "
        f"(answered {BUSY}); now greets with 220")
    shown = run.json("workers")["relays_out"]
    assert [(r["name"], r["reason"]) for r in shown] == [("a", f"answered {BUSY}")]
    assert f"SMTP relay a out until {until:%Y-%m-%d %H:%M:%S} UTC" in run("workers").output
