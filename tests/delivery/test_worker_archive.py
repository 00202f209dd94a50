"""`newsletter worker --build-archive`: the worker that finishes a detached send rebuilds the
archive in its own [archive] out folder, with no workspace; without the flag nothing is written
and `send --detach` says who rebuilds it; a worker that finds another process building in the
folder waits for its next tick. And the live workers delete the rows of dead ones."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from newsletter.db.engine import make_engine
from newsletter.db.models import utcnow
from newsletter.db.tables import WORKERS
from tests.delivery.sender_fixtures import configure, seed, write_issue
from tests.delivery.worker_fixtures import (
    Workers,
    issue_status,
    live_workers,
    query,
    wait_until,
    worker_env,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "newsletter" / "skeleton" / "issues" \
    / "2026-11-coalition-update"


def _drain(tmp_path: Path, db_url: str, port: int, *args: str) -> tuple[Path, str]:
    """One `worker --until-idle` in an empty folder whose [archive] out is web/site, logging
    JSON lines; that folder and what the worker printed."""
    site = tmp_path / "web" / "site"
    workers = Workers(tmp_path / "hosts", worker_env(db_url, port, archive_out=site,
                                                     log_format="json"))
    proc = workers.start("--until-idle", *args)
    proc.wait(timeout=60)
    output = workers.output(proc)
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    return site, output


@pytest.mark.slow
def test_a_worker_with_build_archive_publishes_the_issue_it_finished(
        tmp_path, workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace, languages=("en", "fr"))
    seed(workspace, ["en", "fr", "fr"], list_languages=("en", "fr"))
    run("send", "nov", "--yes", "--detach")
    site, output = _drain(tmp_path, db_url, smtp_server.port, "--build-archive")
    assert "sent 3" in output and "archive rebuilt 1 time(s)" in output
    logged = [json.loads(line)["message"] for line in output.splitlines()
              if line.startswith("{")]
    assert len(logged) == 1 and logged[0].startswith("archive rebuilt after issue nov was sent")
    assert issue_status(db_url) == "sent"
    for lang, subject in (("en", "Coalition news"), ("fr", "Nouvelles de la coalition")):
        assert subject in (site / lang / "2026" / "nov" / "index.html").read_text("utf-8")
        assert "/nov/" in (site / lang / "index.html").read_text("utf-8")
        assert "/nov/" in (site / lang / "feed.xml").read_text("utf-8")
    assert not any((tmp_path / "hosts" / "host0").iterdir())  # no workspace was made


# Another process in the middle of a build: it holds the folder's lock (flock on the folder,
# as archive/buildlock.py takes it) until told to stop.
HOLD = """
import fcntl, os, sys
os.makedirs(sys.argv[1], exist_ok=True)
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("held", flush=True)
sys.stdin.readline()
"""


@pytest.mark.slow
def test_a_worker_that_finds_another_process_building_the_archive_builds_at_a_later_tick(
        tmp_path, workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace, languages=("en",))
    seed(workspace, ["en"], list_languages=("en",))
    run("send", "nov", "--yes", "--detach")
    site = tmp_path / "web" / "site"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(site)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    workers = Workers(tmp_path / "hosts", worker_env(db_url, smtp_server.port, archive_out=site,
                                                     log_format="json"))
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        proc = workers.start("--until-idle", "--build-archive")
        wait_until(lambda: "another process is building" in workers.output(proc), 60,
                   "the worker to find the folder taken")
        assert issue_status(db_url) == "sent" and proc.poll() is None  # it will try again
        assert not (site / "en" / "index.html").exists()  # nothing written meanwhile
    finally:
        holder.communicate("done\n", timeout=10)  # the other build is over
    proc.wait(timeout=60)
    output = workers.output(proc)
    assert proc.returncode == 0 and "archive rebuilt 1 time(s)" in output, output
    assert "/nov/" in (site / "en" / "index.html").read_text("utf-8")


@pytest.mark.slow
def test_without_the_flag_no_archive_is_written_and_send_detach_says_who_rebuilds_it(
        tmp_path, workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en", "fr"])
    out = " ".join(run("send", "nov", "--yes", "--detach").output.split())
    assert "`newsletter worker --build-archive`" in out
    assert "`newsletter archive build`" in out
    site, output = _drain(tmp_path, db_url, smtp_server.port)
    assert "sent 2" in output and "archive rebuilt" not in output
    assert issue_status(db_url) == "sent"
    assert not site.parent.exists()


def test_a_worker_without_the_issues_pictures_leaves_the_site_alone_and_still_sends(
        tmp_path, workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    shutil.copytree(EXAMPLE, workspace / "issues" / EXAMPLE.name)
    seed(workspace, ["en", "fr"])
    run("send", EXAMPLE.name, "--yes", "--detach")
    site, output = _drain(tmp_path, db_url, smtp_server.port, "--build-archive")
    assert "sent 2" in output and "archive rebuilt 0 time(s)" in output
    warning = [json.loads(line) for line in output.splitlines() if "archive not rebuilt" in line]
    assert len(warning) == 1 and warning[0]["level"] == "warning", output
    assert "regional-meeting.png" in warning[0]["message"]
    assert "newsletter archive build" in warning[0]["message"]
    assert issue_status(db_url, EXAMPLE.name) == "sent"
    assert not any(site.iterdir())


def test_a_worker_that_cannot_write_the_archive_folder_says_so_before_sending(
        tmp_path, workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en"])
    run("send", "nov", "--yes", "--detach")
    blocker = tmp_path / "web"
    blocker.write_text("a file, not a folder")
    workers = Workers(tmp_path / "hosts", worker_env(db_url, smtp_server.port,
                                                     archive_out=blocker / "site"))
    proc = workers.start("--until-idle", "--build-archive")
    proc.wait(timeout=60)
    output = workers.output(proc)
    assert proc.returncode == 1
    assert f"cannot write the archive folder {blocker / 'site'}" in output
    assert "Traceback" not in output
    assert not smtp_server.messages and issue_status(db_url) == "sending"


@pytest.mark.slow
def test_a_live_worker_deletes_the_row_of_a_worker_silent_for_a_minute(
        tmp_path, workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(insert(WORKERS).values(
            name="elsewhere:4242:t1:abcdef", host="elsewhere", pid=4242, started_at=utcnow(),
            heartbeat_at=utcnow() - timedelta(seconds=30), sent=10, rate=0.0))
    engine.dispose()
    clock = tmp_path / "clock"
    workers = Workers(tmp_path / "hosts", worker_env(db_url, smtp_server.port,
                                                     clock_file=clock))
    try:
        proc = workers.start()
        wait_until(lambda: live_workers(db_url) == 2, 30, "the worker to register")
        # Silent for 30 s: gone, but kept a while so that `newsletter workers` shows it.
        listed = run.json("workers")["workers"]
        assert [(w["pid"], w["alive"]) for w in listed] == [(4242, False), (proc.pid, True)]
        clock.write_text("90")  # a minute and a half later, for the worker
        wait_until(lambda: live_workers(db_url) == 1, 15, "the silent row to be deleted")
        assert query(db_url, "SELECT pid FROM workers") == [(proc.pid,)]
        assert [w["pid"] for w in run.json("workers")["workers"]] == [proc.pid]
        assert "1 live worker(s)" in run("workers").output
    finally:
        workers.stop_all()
