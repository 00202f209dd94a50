"""DKIM signer processes: a signed send's RSA made beside the sender, every message verified by
dkimpy; a signer killed mid-send, Ctrl-C, SIGTERM and a killed sender leave nothing behind."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import dkim as dkimpy
import pytest

from newsletter.config import load_settings
from newsletter.delivery.dkim import dns_record, load_dkim
from tests.conftest import clean_env, require_module, write_config
from tests.delivery.sender_fixtures import deliveries, processes, seed, until, write_issue


def _configure(workspace: Path, db_url: str, port: int, key_file: Path, **smtp: object) -> None:
    require_module("cryptography")
    values = {"host": "127.0.0.1", "port": port, "workers": 1, "connections": 4,
              "timeout": 5.0, **smtp}
    lines = "\n".join(f"{k} = {v!r}" for k, v in values.items()).replace("'", '"')
    workspace.mkdir(parents=True, exist_ok=True)
    shutil.copy(key_file, workspace / "dkim.pem")
    write_config(workspace, db_url, f'\n[smtp]\n{lines}\n\n[dkim]\nkey_path = "dkim.pem"\n'
                 'selector = "s1"\n')


def _verify_all(workspace: Path, messages: list[Any]) -> None:
    """Every message carries one DKIM-Signature that dkimpy verifies against the key's record."""
    name, value = dns_record(load_dkim(load_settings(workspace)))

    def dnsfunc(qname: bytes, timeout: int = 5) -> bytes | None:
        return value.encode() if qname.decode().rstrip(".") == name else None

    for _sender, _rcpts, data in messages:
        assert data.count(b"DKIM-Signature:") == 1
        assert dkimpy.verify(data, dnsfunc=dnsfunc), data[:600]


def _signers_of(parent: int) -> list[int]:
    return processes(b"rsaproc", parent=parent)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_signed_send_signs_in_signer_processes_and_every_message_verifies(
        run, workspace, db_url, smtp_server, both_pipelinings, key_file, monkeypatch, workers):
    from newsletter.delivery.signers import Signers

    def not_here(self: Any, digest: bytes) -> bytes:
        raise AssertionError("signed in the sender process")

    monkeypatch.setattr(Signers, "sign_here", not_here)  # every signature from a signer
    server = smtp_server  # both_pipelinings: with and without PIPELINING
    _configure(workspace, db_url, server.port, key_file)
    write_issue(workspace)
    emails = seed(workspace, ["en", "fr", "es"] * 40)
    report = run.json("send", "nov", "--yes", "--workers", workers)
    assert (report["workers"], report["signers"], report["sent"]) == (int(workers), 1, 120)
    assert Counter(r[0] for _s, r, _d in server.messages) == Counter({e: 1 for e in emails})
    _verify_all(workspace, server.messages)
    assert not _signers_of(os.getpid())


@pytest.mark.slow
@pytest.mark.parametrize(("how", "warning"), [
    (signal.SIGKILL, "a DKIM signer process ended"),
    # alive and silent: without the watch its connections would wait for ever
    (signal.SIGSTOP, "a DKIM signer process did not answer for 0.5 s and was ended"),
], ids=["killed", "stopped"])
def test_a_signer_lost_mid_send_is_replaced_by_signing_here_and_nothing_goes_unsigned(
        run, workspace, db_url, smtp_server, key_file, caplog, monkeypatch, how, warning):
    from newsletter.delivery import signers

    monkeypatch.setattr(signers, "HUNG_AFTER", 0.5)
    monkeypatch.setattr(signers, "WATCH_EVERY", 0.1)
    lost: list[int] = []

    def lose_the_signer(rcpt: str, n: int) -> None:
        pool = signers.active()
        if not lost and len(smtp_server.messages) >= 20 and pool is not None and pool.live:
            lost.append(pool.live[0].proc.pid)
            os.kill(lost[0], how)

    smtp_server.reply_for = lose_the_signer
    _configure(workspace, db_url, smtp_server.port, key_file, rate=400.0)
    write_issue(workspace)
    emails = seed(workspace, ["en", "fr"] * 80)
    with caplog.at_level(logging.WARNING, logger="newsletter.delivery.signers"):
        report = run.json("send", "nov", "--yes")
    assert lost, "the signer was not lost mid-send"
    assert report["sent"] == len(emails) and report["status"] == "sent"
    assert warning in caplog.text
    assert Counter(r[0] for _s, r, _d in smtp_server.messages) == Counter({e: 1 for e in emails})
    _verify_all(workspace, smtp_server.messages)
    assert not _alive(lost[0]) and not _signers_of(os.getpid())


def test_signers_that_cannot_start_leave_the_signing_to_the_sender(
        run, workspace, db_url, smtp_server, key_file, monkeypatch, caplog):
    monkeypatch.setattr(sys, "executable", str(workspace / "no-such-python"))
    _configure(workspace, db_url, smtp_server.port, key_file)
    write_issue(workspace)
    seed(workspace, ["en", "fr"] * 5)
    with caplog.at_level(logging.WARNING, logger="newsletter.delivery.crew"):
        report = run.json("send", "nov", "--yes")
    assert report["sent"] == 10 and "no DKIM signer process" in caplog.text
    _verify_all(workspace, smtp_server.messages)


@pytest.mark.slow
def test_a_worker_daemon_signs_in_signer_processes_and_ends_them_when_it_stops(
        tmp_path, run, workspace, db_url, smtp_server, key_file):
    """`newsletter worker` starts signer processes for its life, as `send` does: they sign
    while it sends, every message verifies, and none is left once the worker has stopped."""
    from tests.delivery.worker_fixtures import Workers, worker_env

    _configure(workspace, db_url, smtp_server.port, key_file)
    write_issue(workspace)
    emails = seed(workspace, ["en", "fr"] * 150)
    run("send", "nov", "--yes", "--detach")
    env = worker_env(db_url, smtp_server.port, smtp_rate=300, dkim_selector="s1",
                     dkim_key_path=workspace / "dkim.pem")
    workers = Workers(tmp_path / "hosts", env)
    proc = workers.start("--until-idle", "--signers", "1")
    seen: set[int] = set()
    while proc.poll() is None:
        seen.update(_signers_of(proc.pid))
        time.sleep(0.05)
    assert proc.returncode == 0, workers.output(proc)
    assert len(seen) == 1, workers.output(proc)
    assert Counter(r[0] for _s, r, _d in smtp_server.messages) == Counter({e: 1 for e in emails})
    _verify_all(workspace, smtp_server.messages)
    assert not any(_alive(pid) for pid in seen)
    assert "signer process ended" not in workers.output(proc)


def _sender(workspace: Path) -> subprocess.Popen[bytes]:
    env = clean_env()
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "-w", str(workspace), "send", "nov", "--yes"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sigterm to all", "sender killed"])
def test_no_signer_outlives_its_send(workspace, db_url, smtp_server, key_file, how):
    """Ctrl-C (the whole process group) and SIGTERM pause the send, also a SIGTERM to the
    signers as well (systemd stopping a unit): they sign until the sender ends them. A sender
    killed outright takes its signers with it (their stdin ends). No process is left, nothing
    is printed."""
    _configure(workspace, db_url, smtp_server.port, key_file, rate=200.0)
    write_issue(workspace)
    seed(workspace, ["en", "fr"] * 500)
    proc = _sender(workspace)
    assert smtp_server.wait_for(30, timeout=60)
    found = _signers_of(proc.pid)
    assert found, "no signer process beside the sender"
    if how == "sender killed":
        proc.kill()
    elif how == "sigterm to all":
        for pid in (*found, proc.pid):
            os.kill(pid, signal.SIGTERM)
    else:
        kill = os.killpg if how == "ctrl-c" else os.kill
        kill(proc.pid, signal.SIGINT if how == "ctrl-c" else signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    if how == "sender killed":
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130 and b"Paused" in out, out.decode()
        statuses = Counter(s for s, _l, _r in deliveries(workspace).values())
        assert statuses["sending"] == 0 and statuses["sent"] == len(smtp_server.messages)
    assert b"Traceback" not in out and b"leaked" not in out, out.decode()
    assert b"signer process ended" not in out, out.decode()
    assert until(lambda: not any(_alive(pid) for pid in found), timeout=10)
    _verify_all(workspace, smtp_server.messages)


def test_each_request_gets_its_own_signature_the_same_as_signing_here(tmp_path, key_file):
    """Many digests in flight over two signers: each answer goes to its request (PKCS #1 v1.5
    is deterministic, so it must equal the signature made in this process)."""
    import asyncio
    import hashlib

    from newsletter.delivery.signers import Signers

    _configure(tmp_path, "sqlite://", 25, key_file)
    dkim = load_dkim(load_settings(tmp_path))
    digests = [hashlib.sha256(b"%d" % i).digest() for i in range(300)]

    async def ask_all(signers: Signers) -> list[bytes]:
        return list(await asyncio.gather(*(signers.ask(d) for d in digests)))

    with Signers(dkim, 2) as signers:
        procs = [s.proc for s in signers.live]
        answers = asyncio.run(ask_all(signers))
        assert len(signers.live) == 2  # none was lost: all came from the signers
    assert answers == [signers.sign_here(d) for d in digests]
    assert [p.returncode for p in procs] == [0, 0]  # ended when their stdin closed


def test_a_signer_process_imports_cryptography_and_nothing_of_the_sender():
    code = ("import sys; from newsletter.delivery import rsaproc; "
            "from cryptography.hazmat.primitives import serialization; "
            "print(' '.join(sorted(sys.modules)))")
    modules = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                 text=True).stdout.split())
    ours = {m for m in modules if m.startswith("newsletter")}
    assert ours == {"newsletter", "newsletter.delivery", "newsletter.delivery.rsaproc"}
    assert not {"sqlalchemy", "asyncio", "aiosmtplib", "dkim"} & modules
