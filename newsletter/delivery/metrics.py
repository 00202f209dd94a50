"""Prometheus metrics of a send worker: what it sent, and the queue as the database sees it.

A worker process makes one registry (`new_registry`), one `WorkerMetrics(name, registry)` and
calls `observe(delta, relay)` after each journal commit with the outcomes it just recorded
({"sent": 40, "deferred": 2}). `QueueCollector(engine)` reads the queue at scrape time, so the
numbers are the database's, shared by every worker on every host. `start_metrics_server`
serves the Prometheus text format on a port (`newsletter worker --metrics-port`).

Exposed (every name starts with newsletter_):

- messages_total{outcome,relay,worker}: counter; outcome is sent, deferred or failed.
- send_rate{relay,worker}: gauge, messages sent per second over the last `window` seconds.
- queue_depth{issue}: gauge, deliveries queued or deferred of each issue scheduled, sending
  or paused.
- in_flight{issue}: gauge, deliveries marked sending (DATA under way) of those issues.
- oldest_lease_age_seconds: gauge, how long ago the oldest lease still held was taken or
  renewed (0 when none); above the lease length, a worker died and its batch waits.
- expired_leases: gauge, claimed rows whose lease ran out and nobody has taken over yet.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from newsletter.db.models import utcnow
from newsletter.db.tables import DELIVERIES, ISSUES
from newsletter.delivery.queue import OPEN

OUTCOMES = ("sent", "deferred", "failed")
LIVE_ISSUES = ("scheduled", "sending", "paused")


def new_registry() -> CollectorRegistry:
    """A registry of our own, so tests and several servers in one process do not mix."""
    return CollectorRegistry()


class WorkerMetrics:
    """The counters and the rate of one worker process (one instance per registry)."""

    def __init__(self, worker: str, registry: CollectorRegistry, *, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.worker = worker
        self.window = window
        self.clock = clock
        self.messages = Counter("newsletter_messages", "Deliveries recorded, by outcome.",
                                ["outcome", "relay", "worker"], registry=registry)
        self._recent: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()
        registry.register(_RateCollector(self))

    def observe(self, delta: Mapping[str, int], relay: str) -> None:
        """Add the outcomes of one commit; keys other than sent/deferred/failed are ignored."""
        for outcome in OUTCOMES:
            n = int(delta.get(outcome, 0))
            if n > 0:
                self.messages.labels(outcome, relay, self.worker).inc(n)
        sent = int(delta.get("sent", 0))
        with self._lock:
            recent = self._recent.setdefault(relay, deque())
            recent.append((self.clock(), max(sent, 0)))

    def rates(self) -> dict[str, float]:
        """relay -> messages sent per second over the last window (0 for a relay gone quiet)."""
        now = self.clock()
        out: dict[str, float] = {}
        with self._lock:
            for relay, recent in self._recent.items():
                while recent and recent[0][0] < now - self.window:
                    recent.popleft()
                out[relay] = sum(n for _t, n in recent) / self.window
        return out


class _RateCollector(Collector):
    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("newsletter_send_rate", "Messages sent per second over the "
                                  "last minute.", labels=["relay", "worker"])
        for relay, rate in sorted(self.metrics.rates().items()):
            gauge.add_metric([relay, self.metrics.worker], rate)
        yield gauge


@dataclass(frozen=True)
class QueueState:
    depth: dict[str, int]  # issue slug -> queued + deferred
    in_flight: dict[str, int]  # issue slug -> sending
    oldest_lease_age: float  # seconds, 0 when no lease is held
    expired_leases: int


def queue_state(engine: Engine, lease: float) -> QueueState:
    """The queue of the issues sending or paused, read through the claim index."""
    now = utcnow()
    d = DELIVERIES.c
    live = select(ISSUES.c.id).where(ISSUES.c.status.in_(LIVE_ISSUES)).scalar_subquery()
    depth: dict[str, int] = {}
    in_flight: dict[str, int] = {}
    with engine.connect() as conn:
        for slug, status, n in conn.execute(
            select(ISSUES.c.slug, d.status, func.count())
            .join(ISSUES, ISSUES.c.id == d.issue_id)
            .where(d.issue_id.in_(live), d.status.in_((*OPEN, "sending")))
            .group_by(ISSUES.c.slug, d.status)
        ):
            target = in_flight if status == "sending" else depth
            target[slug] = target.get(slug, 0) + n
        held = (d.issue_id.in_(live), d.status.in_((*OPEN, "sending")), d.worker.is_not(None))
        first = conn.execute(select(func.min(d.lease_until)).where(*held)).scalar()
        expired = conn.execute(
            select(func.count()).where(*held, d.lease_until < now)).scalar_one()
    age = 0.0
    if first is not None:
        age = max(0.0, (now - (first - timedelta(seconds=lease))).total_seconds())
    return QueueState(depth, in_flight, age, expired)


class QueueCollector(Collector):
    """Gauges read from the database at each scrape (`lease`: the workers' lease, seconds)."""

    def __init__(self, engine: Engine, lease: float = 300.0) -> None:
        self.engine = engine
        self.lease = lease

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = queue_state(self.engine, self.lease)
        depth = GaugeMetricFamily("newsletter_queue_depth", "Deliveries queued or deferred, "
                                  "per issue scheduled, sending or paused.", labels=["issue"])
        flight = GaugeMetricFamily("newsletter_in_flight", "Deliveries whose DATA is under "
                                   "way, per issue.", labels=["issue"])
        for slug, n in sorted(state.depth.items()):
            depth.add_metric([slug], n)
        for slug, n in sorted(state.in_flight.items()):
            flight.add_metric([slug], n)
        yield depth
        yield flight
        yield GaugeMetricFamily("newsletter_oldest_lease_age_seconds", "Age of the oldest "
                                "lease still held (taken or last renewed).",
                                value=state.oldest_lease_age)
        yield GaugeMetricFamily("newsletter_expired_leases", "Claimed deliveries whose lease "
                                "ran out and that nobody took over yet.",
                                value=state.expired_leases)


@dataclass
class MetricsServer:
    """A running endpoint: its port (useful with port 0) and how to stop it."""

    port: int
    _server: Any
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(port: int, registry: CollectorRegistry, *,
                         addr: str = "127.0.0.1") -> MetricsServer:
    """Serve `registry` in the Prometheus text format at http://addr:port/metrics (a thread)."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server.server_port, server, thread)


def worker_registry(worker: str, engine: Engine, lease: float = 300.0
                    ) -> tuple[CollectorRegistry, WorkerMetrics]:
    """Everything a worker exposes: its counters and rate, and the queue read at scrape time."""
    registry = new_registry()
    metrics = WorkerMetrics(worker, registry)
    registry.register(QueueCollector(engine, lease))
    return registry, metrics


def worker_observer(metrics: WorkerMetrics, default_relay: str = "smtp"
                    ) -> Callable[[str, Mapping[str, int]], None]:
    """The daemon's observer (issue slug or "outbox", counts) feeding `metrics`.

    With several relays the counts carry the messages each relay took (relays.sent_key);
    those are the per-relay `sent`, and the deferred and failed ones, whose relay the counts do
    not name, go under relay "any". With one relay everything is that relay's.
    """
    from newsletter.delivery.relays import SENT

    def observe(_what: str, delta: Mapping[str, int]) -> None:
        per_relay = {k.removeprefix(SENT): n for k, n in delta.items() if k.startswith(SENT)}
        if not per_relay:
            metrics.observe(delta, default_relay)
            return
        for relay, n in per_relay.items():
            metrics.observe({"sent": n}, relay)
        metrics.observe({k: delta.get(k, 0) for k in ("deferred", "failed")}, "any")

    return observe
