"""Many one-click unsubscribes at the same moment: each is written, with its own audit event,
before its 200; a write that fails answers an error page, never a 200.

The app commits concurrent unsubscribes together, one transaction per batch, and writes a
failed batch's unsubscribes again one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import httpx
from sqlalchemy import text

from newsletter.links import unsubscribe_url
from newsletter.services import build_services
from newsletter.tokens import Signer
from newsletter.web import create_app
from tests.conftest import SECRET
from tests.web.conftest import BASE_URL, WebEnv

ONE_CLICK = {
    "content": b"List-Unsubscribe=One-Click",
    "headers": {"Content-Type": "application/x-www-form-urlencoded"},
}


def _post_all(web: WebEnv, paths: list[str]) -> list[httpx.Response]:
    """POST every path at once, from one event loop, against a fresh app on the same database."""
    app = create_app(build_services(web.settings, engine=web.engine))

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            return await asyncio.gather(*(client.post(path, **ONE_CLICK) for path in paths))

    try:
        return asyncio.run(run())
    finally:
        app.state.web.close()


def _subscribers(web: WebEnv, count: int) -> tuple[int, list[int], list[str]]:
    list_id = web.add_list()
    ids = [web.add_subscriber(f"reader{n}@example.org", list_id) for n in range(count)]
    signer = Signer(SECRET)
    paths = [unsubscribe_url(BASE_URL, signer, sid, list_id).removeprefix(BASE_URL) for sid in ids]
    return list_id, ids, paths


@contextlib.contextmanager
def refusing_updates(web: WebEnv, condition: str) -> Iterator[None]:
    """Make the database refuse to update a subscription when `condition` (SQL on OLD) holds."""
    if web.engine.dialect.name == "sqlite":
        create = [
            "CREATE TRIGGER refuse BEFORE UPDATE ON subscriptions "
            f"WHEN {condition} BEGIN SELECT RAISE(ABORT, 'refused by a test'); END"
        ]
        drop = ["DROP TRIGGER refuse"]
    else:
        create = [
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
            f"IF {condition} THEN RAISE EXCEPTION 'refused by a test'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE UPDATE ON subscriptions "
            "FOR EACH ROW EXECUTE FUNCTION refuse()",
        ]
        drop = ["DROP TRIGGER refuse ON subscriptions", "DROP FUNCTION refuse()"]
    with web.engine.begin() as conn:
        for statement in create:
            conn.execute(text(statement))
    try:
        yield
    finally:
        with web.engine.begin() as conn:
            for statement in drop:
                conn.execute(text(statement))


def test_concurrent_one_clicks_are_all_recorded_each_with_its_event(web: WebEnv) -> None:
    list_id, ids, paths = _subscribers(web, 40)
    answers = _post_all(web, paths + paths[:5])  # five mailbox providers retry at once
    assert [answer.status_code for answer in answers] == [200] * 45
    for sid in ids:
        row = web.subscription(sid, list_id)
        assert row["status"] == "unsubscribed" and row["unsubscribed_at"] is not None
    events = web.events("unsubscribe")
    assert sorted(event["subscriber_id"] for event in events) == sorted(ids)
    assert all(event["data"] == {"via": "one-click"} and event["ip"] for event in events)
    # The events' time reads back as the same instant as the subscription's (SQLite's rows are
    # written by the driver directly, so a format slip would show here).
    row = web.subscription(ids[0], list_id)
    first = next(event for event in events if event["subscriber_id"] == ids[0])
    assert first["created_at"] == row["unsubscribed_at"]


def test_one_refused_write_fails_only_its_own_request(web: WebEnv) -> None:
    list_id, ids, paths = _subscribers(web, 20)
    refused = ids[-1]
    with refusing_updates(web, f"OLD.subscriber_id = {refused}"):
        answers = _post_all(web, paths)
    statuses = dict(zip(ids, (answer.status_code for answer in answers), strict=True))
    assert statuses.pop(refused) == 500
    assert set(statuses.values()) == {200}
    assert web.subscription(refused, list_id)["status"] == "confirmed"
    assert sorted(e["subscriber_id"] for e in web.events("unsubscribe")) == sorted(statuses)


def test_a_failed_batch_answers_every_request_with_an_error_page(web: WebEnv) -> None:
    list_id, ids, paths = _subscribers(web, 12)
    with refusing_updates(web, "1 = 1"):
        answers = _post_all(web, paths)
    for answer in answers:
        assert answer.status_code == 500
        assert "Something went wrong" in answer.text and "Traceback" not in answer.text
    assert {web.subscription(sid, list_id)["status"] for sid in ids} == {"confirmed"}
    assert web.events("unsubscribe") == []
    # Once the database accepts writes again, the same links work.
    assert [answer.status_code for answer in _post_all(web, paths)] == [200] * 12
