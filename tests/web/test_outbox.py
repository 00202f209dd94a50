"""The outbox: a failing relay loses nothing; mails are retried with backoff, never doubled."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from newsletter.configschema import RelaySettings
from newsletter.db.models import utcnow
from newsletter.delivery.relayview import hour_used
from newsletter.outbox import deliver_outbox, enqueue
from tests.web.conftest import WebEnv, unused_port

MESSAGE = b"From: news@example.org\r\nTo: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


def test_a_refusing_relay_defers_the_mail_and_a_later_pass_sends_it(web: WebEnv) -> None:
    web.add_list()
    web.client.post("/subscribe/news", data={"email": "ana@example.org", "language": "fr"})
    web.smtp.handler.refuse = 1  # first DATA gets 451, then the server accepts
    first = web.deliver()
    assert (first.sent, first.deferred) == (0, 1)
    [row] = web.outbox()
    assert row["status"] == "deferred" and row["attempts"] == 1
    assert row["last_error"].startswith("451") and row["next_attempt_at"] > utcnow()
    assert web.deliver().total == 0  # not due yet: nothing is hammered
    later = web.deliver(now=utcnow() + timedelta(minutes=2))
    assert later.sent == 1
    [row] = web.outbox()
    assert row["status"] == "sent" and row["attempts"] == 2 and row["sent_at"] is not None
    [message] = web.smtp.messages
    assert message["Subject"] == "Merci de confirmer votre abonnement à Network News"


def test_a_relay_that_is_down_defers_every_mail(web: WebEnv) -> None:
    enqueue(web.engine, "confirm", "a@example.org", "news@example.org", MESSAGE)
    enqueue(web.engine, "confirm", "b@example.org", "news@example.org", MESSAGE)
    down = web.other_app({"smtp": {"port": unused_port()}})
    settings = down.app.state.web.settings
    report = asyncio.run(deliver_outbox(settings, web.engine))
    assert report.deferred == 2
    assert {r["status"] for r in web.outbox()} == {"deferred"}
    assert all(r["last_error"].startswith("the SMTP relay at 127.0.0.1:")
               and "is unreachable (" in r["last_error"] for r in web.outbox())


def test_a_permanent_refusal_fails_without_retry(web: WebEnv) -> None:
    enqueue(web.engine, "confirm", "gone@example.org", "news@example.org", MESSAGE)
    web.smtp.handler.reject_permanently = True
    assert web.deliver().failed == 1
    [row] = web.outbox()
    assert row["status"] == "failed" and row["last_error"].startswith("550")
    assert web.deliver(now=utcnow() + timedelta(days=1)).total == 0


def test_retries_give_up_after_three_days(web: WebEnv) -> None:
    enqueue(web.engine, "confirm", "a@example.org", "news@example.org", MESSAGE)
    web.smtp.handler.refuse = 100
    web.deliver()
    web.deliver(now=utcnow() + timedelta(days=4))
    [row] = web.outbox()
    assert row["status"] == "failed" and "gave up" in row["last_error"]


def test_two_workers_at_once_send_each_mail_once(web: WebEnv) -> None:
    for i in range(30):
        enqueue(web.engine, "confirm", f"u{i}@example.org", "news@example.org", MESSAGE)

    async def both():
        return await asyncio.gather(
            deliver_outbox(web.settings, web.engine), deliver_outbox(web.settings, web.engine)
        )

    reports = asyncio.run(both())
    assert sum(r.sent for r in reports) == 30
    assert len(web.smtp.messages) == 30
    assert len({rcpts[0] for _sender, rcpts in web.smtp.handler.envelopes}) == 30


def test_cli_lists_and_flushes_the_outbox(web: WebEnv) -> None:
    from tests.conftest import Cli

    run = Cli(web.settings.workspace)
    web.add_list()
    web.client.post("/subscribe/news", data={"email": "cli@example.org"})
    [row] = run.json("outbox", "list")
    assert row["recipient"] == "cli@example.org" and row["status"] == "queued"
    assert "message" not in row
    assert run.json("outbox", "send") == {"sent": 1, "deferred": 0, "failed": 0}
    assert run.json("outbox", "list", "--status", "sent")[0]["kind"] == "confirm"
    assert "sent 0" in run("outbox", "send").output


def test_the_apps_outbox_worker_gives_back_its_hourly_reservation_when_it_stops(
        web: WebEnv) -> None:
    relay = RelaySettings(name="a", host=web.smtp.host, port=web.smtp.port, hourly=500)
    overrides = {"smtp": {"relays": [relay]}, "web": {"outbox_interval": 0.05}}
    enqueue(web.engine, "confirm", "a@example.org", "news@example.org", MESSAGE)
    with web.other_app(overrides):  # its lifespan runs the outbox worker
        deadline = time.monotonic() + 20
        while not web.smtp.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(web.smtp.messages) == 1
        with web.engine.connect() as conn:
            assert hour_used(conn, "a", utcnow()) > 1  # what the worker holds while it runs
    with web.engine.connect() as conn:  # stopped: only the mail it sent still counts
        assert 0 < hour_used(conn, "a", utcnow()) <= 1  # (less just after the hour turns)
