"""Abuse limits: per network address and per mailbox, counted in the database."""

from __future__ import annotations

import pytest

from tests.web.conftest import WebEnv


@pytest.fixture
def web_extra() -> str:
    return "max_subscribes_per_ip = 4\nmax_confirmations_per_address = 2"


def test_one_address_gets_at_most_n_confirmation_mails_a_day(web: WebEnv) -> None:
    web.add_list()
    answers = [
        web.client.post("/subscribe/news", data={"email": "target@example.org"}) for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len({a.text for a in answers}) == 1  # the cap is not revealed
    assert len(web.outbox("confirm")) == 2
    assert web.events("subscribe")[-1]["data"]["outcome"] == "throttled"


def test_one_network_address_is_stopped_after_n_requests_an_hour(web: WebEnv) -> None:
    web.add_list()
    codes = [
        web.client.post(
            "/subscribe/news?lang=fr", data={"email": f"user{i}@example.org"}
        ).status_code
        for i in range(5)
    ]
    assert codes == [200, 200, 200, 200, 429]
    blocked = web.client.post(
        "/subscribe/news", data={"email": "x@example.org"}, headers={"Accept-Language": "fr"}
    )
    assert blocked.status_code == 429 and "Trop de tentatives" in blocked.text
    assert len(web.outbox("confirm")) == 4


def test_the_ip_limit_is_shared_by_every_app_instance(web: WebEnv) -> None:
    web.add_list()
    replica = web.other_app({})
    for i in range(2):
        web.client.post("/subscribe/news", data={"email": f"a{i}@example.org"})
        replica.post("/subscribe/news", data={"email": f"b{i}@example.org"})
    assert replica.post("/subscribe/news", data={"email": "c@example.org"}).status_code == 429
    assert web.client.post("/subscribe/news", data={"email": "d@example.org"}).status_code == 429
    # The refused requests wrote nobody and queued no mail; the four allowed ones did.
    assert web.subscriber("c@example.org") is None and web.subscriber("d@example.org") is None
    assert sorted(m["recipient"] for m in web.outbox("confirm")) == [
        "a0@example.org", "a1@example.org", "b0@example.org", "b1@example.org"]
