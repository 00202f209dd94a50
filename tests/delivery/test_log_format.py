"""`--log-format json`: the package's log lines become one JSON object each (a real process)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from newsletter.logs import JsonFormatter
from tests.conftest import clean_env
from tests.delivery.sender_fixtures import configure


def _newsletter(workspace, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env()
    return subprocess.run([sys.executable, "-m", "newsletter", "-w", str(workspace), *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_json_logs_are_one_object_per_line(run, workspace, db_url, smtp_server) -> None:
    configure(workspace, db_url, smtp_server.port)
    run("lists", "add", "news", "--name", "News", "--languages", "en",
        "--default-language", "en")
    for who in ("amina", "jon"):
        run("subscribers", "add", f"{who}@example.org", "--list", "news")
    smtp_server.reply_for = lambda rcpt, n: "550 5.1.1 no such user"

    done = _newsletter(workspace, "--log-format", "json", "outbox", "send")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line parses alone
    assert len(records) == 2
    for record in records:
        assert set(record) >= {"time", "level", "logger", "message"}
        assert record["level"] == "warning" and record["logger"] == "newsletter.outbox"
        assert "failed" in record["message"] and "550 5.1.1" in record["message"]
        assert record["time"].endswith("+00:00")


def test_text_stays_plain_and_a_bad_format_is_refused(run, workspace, db_url, smtp_server):
    configure(workspace, db_url, smtp_server.port)
    run("lists", "add", "news", "--name", "News", "--languages", "en",
        "--default-language", "en")
    run("subscribers", "add", "amina@example.org", "--list", "news")
    smtp_server.reply_for = lambda rcpt, n: "550 5.1.1 no such user"
    done = _newsletter(workspace, "outbox", "send")
    assert done.returncode == 0 and "550 5.1.1" in done.stderr
    assert not done.stderr.lstrip().startswith("{")
    bad = _newsletter(workspace, "--log-format", "xml", "outbox", "send")
    assert bad.returncode == 2 and "'xml' is not one of 'text', 'json'" in bad.stderr


def test_extra_fields_and_tracebacks_are_kept() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("newsletter.x").makeRecord(
            "newsletter.x", logging.ERROR, __file__, 1, "batch %s failed", ("7",),
            sys.exc_info(), extra={"issue": "dec", "relay": "relay-1", "sent": 40})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "batch 7 failed" and entry["level"] == "error"
    assert (entry["issue"], entry["relay"], entry["sent"]) == ("dec", "relay-1", 40)
    assert "ValueError: boom" in entry["exception"]


def test_the_dict_config_for_uvicorn_makes_its_lines_json_too(capsys) -> None:
    import logging.config

    from newsletter.logs import logging_config

    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate,
                    logging.getLogger(name).level)
             for name in ("newsletter", "uvicorn", "uvicorn.error", "uvicorn.access")}
    try:
        logging.config.dictConfig(logging_config("json"))
        logging.getLogger("uvicorn.access").info('%s - "%s %s"', "127.0.0.1", "GET", "/")
        logging.getLogger("newsletter.web").warning("slow", extra={"ms": 612})
    finally:
        for name, (handlers, propagate, level) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.propagate, logger.level = propagate, level
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(x["logger"], x["message"]) for x in lines] == [
        ("uvicorn.access", '127.0.0.1 - "GET /"'), ("newsletter.web", "slow")]
    assert lines[1]["ms"] == 612
