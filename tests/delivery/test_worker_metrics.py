"""`newsletter worker --metrics-port`: Prometheus scrapes what the worker sent and the queue
as the database sees it, and `--log-format json` reaches the worker's own lines."""

from __future__ import annotations

import json
import re
import signal
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.delivery.sender_fixtures import configure, seed, write_issue
from tests.delivery.worker_fixtures import Workers, wait_until, worker_env


def _scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        body = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def _sent(samples: dict[tuple[str, tuple], float]) -> float:
    return sum(v for (name, labels), v in samples.items()
               if name == "newsletter_messages_total" and ("outcome", "sent") in labels)


@pytest.mark.slow
def test_a_worker_serves_its_counts_and_the_queue_to_prometheus(
        tmp_path, workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en"] * 400)
    run("send", "nov", "--yes", "--detach")
    workers = Workers(tmp_path / "hosts", worker_env(db_url, smtp_server.port, smtp_rate=100))
    proc = workers.start("--metrics-port", "0", "--batch-size", "20")
    log = tmp_path / "hosts" / "host0.log"
    wait_until(lambda: "metrics at http://" in log.read_text(), 30, "the metrics endpoint")
    url = re.search(r"metrics at (http://\S+)", log.read_text()).group(1)

    wait_until(lambda: smtp_server.wait_for(50, timeout=0.1), 60, "50 messages")
    during = _scrape(url)
    depth = [v for (name, labels), v in during.items()
             if name == "newsletter_queue_depth" and ("issue", "nov") in labels]
    assert depth and 0 < depth[0] < 400  # the database's view: what is still to send
    assert _sent(during) >= 1

    wait_until(lambda: smtp_server.wait_for(400, timeout=0.1), 60, "every message")
    wait_until(lambda: _sent(_scrape(url)) == 400, 30, "the counter to reach 400")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    assert proc.returncode == 0, workers.output(proc)


def test_a_worker_on_a_taken_port_says_so_in_one_line(tmp_path, workspace, db_url, smtp_server):
    import socket

    configure(workspace, db_url, smtp_server.port)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        workers = Workers(tmp_path / "hosts", worker_env(db_url, smtp_server.port))
        proc = workers.start("--metrics-port", str(port), "--until-idle")
        proc.wait(timeout=30)
    output = workers.output(proc)
    assert proc.returncode == 1
    assert f"--metrics-port {port}: cannot listen" in output and "Traceback" not in output


@pytest.mark.slow
def test_json_logs_reach_a_worker(tmp_path, workspace, db_url, smtp_server, run):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en"] * 2)
    run("send", "nov", "--yes", "--detach")
    env = worker_env(db_url, 1)  # nothing listens there: the worker logs why, as JSON
    env["NEWSLETTER_LOG_FORMAT"] = "json"
    workers = Workers(tmp_path / "hosts", env)
    proc = workers.start("--until-idle")
    proc.wait(timeout=60)
    output = workers.output(proc)
    lines = [line for line in output.splitlines() if line.startswith("{")]
    assert lines, output
    records = [json.loads(line) for line in lines]
    assert any(r["level"] == "error" and "unreachable" in r["message"] for r in records)
