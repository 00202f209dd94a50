"""/subscribe and /manage do the same database work before answering, whoever the address is,
so the answer's timing cannot tell a subscriber from a stranger (bench/timing_bench.py times it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event

from newsletter.audience.jobs import run_pending
from newsletter.db.models import utcnow
from newsletter.outbox import OUTBOX
from tests.web.conftest import TestClient, WebEnv
from tests.web.test_subscribe import _suppress


class BeforeAnswer:
    """An ASGI wrapper noting how many SQL statements ran before the response was complete."""

    def __init__(self, app: Any, statements: list[str]) -> None:
        self.app, self.statements, self.before = app, statements, -1

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def noting(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.before = len(self.statements)

        await self.app(scope, receive, noting)


@contextmanager
def recorded(web: WebEnv) -> Iterator[tuple[TestClient, BeforeAnswer]]:
    statements: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # Literal values (ids, times) may differ; the statements themselves may not.
        statements.append(re.sub(r"\s+", " ", statement))

    event.listen(web.engine, "before_cursor_execute", note)
    wrapper = BeforeAnswer(web.client.app, statements)
    try:
        yield TestClient(wrapper, base_url=web.client.base_url), wrapper
    finally:
        event.remove(web.engine, "before_cursor_execute", note)


def work_before_answer(web: WebEnv, path: str, address: str) -> list[str]:
    with recorded(web) as (client, wrapper):
        answer = client.post(path, data={"email": address, "language": "en"})
        assert answer.status_code == 200
    return wrapper.statements[: wrapper.before]


def test_subscribe_does_the_same_work_for_new_pending_confirmed_and_suppressed(
    web: WebEnv,
) -> None:
    list_id = web.add_list()
    web.add_subscriber("confirmed@example.org", list_id, "confirmed")
    web.add_subscriber("pending@example.org", list_id, "pending")
    _suppress(web, "suppressed@example.org")
    kinds = ("new", "pending", "confirmed", "suppressed")
    work = {k: work_before_answer(web, "/subscribe/news", f"{k}@example.org") for k in kinds}
    assert all(work[k] == work["new"] for k in kinds), work
    writes = [s for s in work["new"] if not s.startswith("SELECT")]
    assert [s.split("(")[0].strip() for s in writes] == ["INSERT INTO outbox"]
    # ...and what depends on the address happened after the answer, once.
    assert {r["recipient"] for r in web.outbox()} == {"new@example.org", "pending@example.org"}
    assert [r["status"] for r in web.outbox()] == ["queued", "queued"]


def test_manage_does_the_same_work_for_known_and_unknown_addresses(web: WebEnv) -> None:
    list_id = web.add_list()
    web.add_subscriber("known@example.org", list_id, "confirmed")
    known = work_before_answer(web, "/manage", "known@example.org")
    unknown = work_before_answer(web, "/manage", "unknown@example.org")
    assert known == unknown
    assert [r["recipient"] for r in web.outbox()] == ["known@example.org"]
    assert [e["data"]["outcome"] for e in web.events("manage")] == ["sent", "unknown"]


def test_a_request_whose_background_work_was_lost_is_done_by_the_worker(web: WebEnv) -> None:
    web.add_list()
    app = web.client.app
    with TestClient(app, base_url=web.client.base_url) as client:
        state = app.state.web
        runner, state.run_job = state.run_job, _lost  # the process died right after answering
        try:
            client.post("/subscribe/news", data={"email": "late@example.org"})
        finally:
            state.run_job = runner
    assert [r["status"] for r in web.outbox()] == ["job"]
    assert run_pending(state.optin, now=utcnow() + timedelta(minutes=1)) == 1
    assert [r["kind"] for r in web.outbox()] == ["confirm"]
    assert run_pending(state.optin, now=utcnow() + timedelta(minutes=1)) == 0
    with web.engine.connect() as conn:
        assert conn.execute(OUTBOX.select().where(OUTBOX.c.status == "job")).first() is None


async def _lost(job_id: int) -> None:
    return None


def test_outbox_send_also_runs_requests_a_dead_process_left(web: WebEnv) -> None:
    from newsletter.audience.jobs import queue_subscribe
    from newsletter.audience.optin import RequestMeta
    from tests.conftest import Cli

    web.add_list()
    queue_subscribe(
        web.client.app.state.web.optin,
        list_slug="news",
        email="orphan@example.org",
        name="",
        language="fr",
        meta=RequestMeta(ip="192.0.2.1"),
        now=utcnow() - timedelta(minutes=2),
    )
    assert Cli(web.settings.workspace).json("outbox", "send")["sent"] == 1
    assert [m["To"] for m in web.smtp.messages] == ["orphan@example.org"]
    assert [r["status"] for r in web.outbox()] == ["sent"]
