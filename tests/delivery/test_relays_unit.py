"""Which relay a connection takes, and when a relay is out, without a database or a server
(tests/delivery/test_relays.py sends through real ones)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from newsletter.config import load_settings
from newsletter.delivery.pool import PoolSettings
from newsletter.delivery.relays import RelaySet, relay_report
from newsletter.delivery.relayview import HourlyBudget


def _relays(tmp_path, toml: str, connections: int = 4) -> tuple[RelaySet, Counter[str]]:
    (tmp_path / "newsletter.toml").write_text(toml, encoding="utf-8")
    report: Counter[str] = Counter()
    settings = load_settings(tmp_path, environ={})
    return RelaySet.for_worker(settings, PoolSettings(connections=connections), 1, report), report


TWO = """
[[smtp.relays]]
name = "a"
host = "a.example"
weight = 3
connections = {a}
[[smtp.relays]]
name = "b"
host = "b.example"
connections = 4
"""


def _bound(relays: RelaySet, n: int) -> list[str]:
    async def bind_all():
        slots = [relays.slot() for _ in range(n)]
        for slot in slots:
            assert await slot.bind()
        names = [slot.state.name for slot in slots]
        for slot in slots:
            await slot.close()
        return names
    return asyncio.run(bind_all())


def test_connections_are_spread_by_weight(tmp_path):
    relays, _ = _relays(tmp_path, TWO.format(a=4), connections=4)
    assert Counter(_bound(relays, 4)) == Counter(a=3, b=1)


def test_a_relay_gets_no_more_connections_than_its_own(tmp_path):
    relays, _ = _relays(tmp_path, TWO.format(a=2), connections=4)
    assert Counter(_bound(relays, 4)) == Counter(a=2, b=2)


def test_a_relay_out_gives_its_connections_to_the_other_until_all_are_out(tmp_path):
    relays, report = _relays(tmp_path, TWO.format(a=4) + "[smtp]\ncooldown = 60\n")
    a, b = relays.states
    for _ in range(a.health.limit):
        a.health.strike("is unreachable (refused)")
    relays.check(a)
    assert relays.fatal is None and a.out_until > time.monotonic() + 59
    assert Counter(_bound(relays, 4)) == Counter(b=4)
    b.health.strike("refused the sender: 550 no", fatal=True)
    relays.check(b)
    assert str(relays.fatal) == (
        "stopped sending: every SMTP relay is out: a at a.example:25 (none) is unreachable "
        "(refused); b at b.example:25 (none) refused the sender: 550 no")
    assert [(r.name, r.taken_out) for r in relay_report(report)] == [
        ("a", ["is unreachable (refused)"]), ("b", ["refused the sender: 550 no"])]


def test_the_one_relay_out_stops_the_send_as_before(tmp_path):
    relays, report = _relays(tmp_path, '[smtp]\nhost = "relay.example"\nport = 2525\n')
    (only,) = relays.states
    assert only.health.limit == 12  # 3 strikes per connection, as before relays
    only.health.strike("did not answer in time", fatal=True)
    relays.check(only)
    assert str(relays.fatal) == ("stopped sending: the SMTP relay at relay.example:2525 (none) "
                                 "did not answer in time")
    assert report == Counter()  # a single relay adds nothing to the counts


def test_an_hourly_budget_counts_messages_and_refuses_the_one_too_many():
    hourly = HourlyBudget(3)  # without a shared view: the worker's share for its run
    assert [hourly.take() for _ in range(4)] == [True, True, True, False]
    assert HourlyBudget(0).take() and HourlyBudget(0.5).limit == 1  # a worker's share: >= 1


def test_a_relay_is_back_after_its_cool_down(tmp_path):
    relays, _ = _relays(tmp_path, TWO.format(a=4) + "[smtp]\ncooldown = 0.2\n")
    a = relays.states[0]
    a.health.strike("answered 421 4.3.2 busy", fatal=True)
    relays.check(a)
    assert Counter(_bound(relays, 1)) == Counter(b=1)
    time.sleep(0.25)
    assert Counter(_bound(relays, 4)) == Counter(a=3, b=1)
