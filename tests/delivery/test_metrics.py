"""The worker's Prometheus endpoint: scraped over HTTP, parsed with prometheus_client's parser."""

from __future__ import annotations

import urllib.request
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, select

from newsletter.db.engine import make_engine
from newsletter.db.models import Delivery, Issue, MailingList, Subscriber, utcnow
from newsletter.delivery.metrics import (
    WorkerMetrics,
    new_registry,
    start_metrics_server,
    worker_registry,
)


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _queue(db_url: str) -> None:
    """Issue 'dec' sending: 6 queued (2 of them leased 100 s ago, 1 lease expired), 1 in
    flight, 3 sent; issue 'nov' sent with 2 rows (not counted)."""
    engine = make_engine(db_url)
    now = utcnow()
    with engine.begin() as conn:
        list_id = conn.execute(insert(MailingList).values(
            slug="news", name="News", default_language="en", languages=["en"],
            created_at=now).returning(MailingList.id)).scalar_one()
        returning = insert(Subscriber).returning(Subscriber.id, sort_by_parameter_order=True)
        ids = conn.execute(returning,
                           [{"email": f"r{i}@example.org", "attributes": {}, "created_at": now,
                             "updated_at": now} for i in range(10)]).scalars().all()
        dec, nov = (conn.execute(insert(Issue).values(
            slug=slug, list_id=list_id, status=status, created_at=now, data={})
            .returning(Issue.id)).scalar_one() for slug, status in (("dec", "sending"),
                                                                     ("nov", "sent")))
        lease_until = now + timedelta(seconds=200)  # lease 300 s, taken 100 s ago
        rows = [dict(status="queued")] * 3 + [dict(status="queued", worker="w1",
                                                   lease_until=lease_until)] * 2
        rows += [dict(status="deferred", worker="w2", lease_until=now - timedelta(seconds=5))]
        rows += [dict(status="sending", worker="w1", lease_until=lease_until)]
        rows += [dict(status="sent")] * 3
        conn.execute(insert(Delivery), [
            {"issue_id": dec, "subscriber_id": sid, "list_id": list_id, "language": "en",
             "attempts": 0, "created_at": now, "worker": None, "lease_until": None, **row}
            for sid, row in zip(ids, rows, strict=True)])
        conn.execute(insert(Delivery), [
            {"issue_id": nov, "subscriber_id": sid, "list_id": list_id, "language": "en",
             "status": "sent", "attempts": 1, "created_at": now} for sid in ids[:2]])
        assert conn.execute(select(Delivery.id)).all()
    engine.dispose()


def test_endpoint_serves_counts_rates_and_the_queue_read_at_scrape_time(db_url) -> None:
    _queue(db_url)
    engine = make_engine(db_url)
    registry, metrics = worker_registry("host-a:41", engine, lease=300.0)
    metrics.observe({"sent": 40, "deferred": 2}, relay="relay-1")
    metrics.observe({"sent": 20, "failed": 1, "unknown": 9}, relay="relay-2")
    metrics.observe({"sent": 5}, relay="relay-1")
    server = start_metrics_server(0, registry)
    try:
        got = _scrape(server.port)
    finally:
        server.close()
        engine.dispose()

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    w = "host-a:41"
    assert value("newsletter_messages_total", outcome="sent", relay="relay-1", worker=w) == 45
    assert value("newsletter_messages_total", outcome="sent", relay="relay-2", worker=w) == 20
    assert value("newsletter_messages_total", outcome="deferred", relay="relay-1", worker=w) == 2
    assert value("newsletter_messages_total", outcome="failed", relay="relay-2", worker=w) == 1
    assert not [k for k in got if ("outcome", "unknown") in k[1]]
    assert value("newsletter_send_rate", relay="relay-1", worker=w) == pytest.approx(45 / 60)
    assert value("newsletter_queue_depth", issue="dec") == 6
    assert value("newsletter_in_flight", issue="dec") == 1
    assert not [k for k in got if ("issue", "nov") in k[1]]
    assert value("newsletter_oldest_lease_age_seconds") == pytest.approx(305, abs=5)
    assert value("newsletter_expired_leases") == 1


def test_rate_covers_the_last_window_only() -> None:
    now = [1000.0]
    metrics = WorkerMetrics("w", new_registry(), window=60.0, clock=lambda: now[0])
    metrics.observe({"sent": 600}, relay="r")
    now[0] += 30
    metrics.observe({"sent": 60}, relay="r")
    assert metrics.rates() == {"r": pytest.approx(660 / 60)}
    now[0] += 45  # the first batch is older than the window
    assert metrics.rates() == {"r": pytest.approx(1.0)}
    now[0] += 60
    assert metrics.rates() == {"r": 0.0}


def test_an_empty_queue_scrapes_as_zero(db_url) -> None:
    engine = make_engine(db_url)
    registry, _metrics = worker_registry("w", engine)
    server = start_metrics_server(0, registry)
    try:
        got = _scrape(server.port)
    finally:
        server.close()
        engine.dispose()
    assert got[("newsletter_oldest_lease_age_seconds", ())] == 0
    assert got[("newsletter_expired_leases", ())] == 0
    assert not [k for k in got if k[0] == "newsletter_queue_depth"]
