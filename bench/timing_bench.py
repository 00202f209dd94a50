"""Does the answer's timing tell who is subscribed? Median response time of POST /subscribe
for a new, pending, confirmed and suppressed address, and of POST /manage for a known and an
unknown one, against a real uvicorn process (newsletter.web.server, as `newsletter serve`).

    python bench/timing_bench.py [--requests 200] [--database sqlite|postgresql] [--source DIR]

Each kind gets its own addresses (one request per address, so a "new" address stays new) and
the kinds take turns, in a shuffled order each round, on one keep-alive connection. After each
request the client waits until the work queued after the answer is done (/healthz counts the
job rows), so it does not land on the next request's clock. The spread is (slowest median -
fastest median) / fastest median within each route; the issue asks for at most 10 %. A
control kind, a second set of new addresses, shows the noise: how far two kinds doing exactly
the same work land apart.
`--source /work/main` serves another checkout's code with the same client, to compare.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import web_bench  # noqa: E402  (the workspace, database and server helpers of the web bench)

SUBSCRIBE_KINDS = ("new", "pending", "confirmed", "suppressed")
CONTROL = "new again"  # a second set of new addresses: its distance from "new" is the noise
MANAGE_KINDS = ("known", "unknown")
LIMIT = 0.10


def _prepare(folder: Path, url: str, count: int) -> None:
    """The bench workspace plus pending and suppressed addresses, `count` of each kind."""
    from newsletter.db.engine import make_engine
    from newsletter.db.models import Subscriber, Subscription, Suppression, utcnow
    from newsletter.tokens import email_hash

    web_bench._workspace(folder, count, url)  # user<i>@example.org, confirmed on "news"
    engine = make_engine(url or f"sqlite:///{folder / 'bench.db'}")
    now = utcnow()
    with engine.begin() as conn:
        for i in range(count):
            sid = conn.execute(
                Subscriber.__table__.insert().values(
                    email=f"pending{i}@example.org", name="", language="en", attributes={},
                    created_at=now, updated_at=now,
                )
            ).inserted_primary_key[0]
            conn.execute(
                Subscription.__table__.insert().values(
                    subscriber_id=sid, list_id=1, status="pending", created_at=now, updated_at=now
                )
            )
        conn.execute(
            Suppression.__table__.insert(),
            [
                {
                    "email_hash": email_hash(f"suppressed{i}@example.org", web_bench.SECRET),
                    "reason": "complaint",
                    "detail": "",
                    "created_at": now,
                }
                for i in range(count)
            ],
        )
    engine.dispose()


def _address(kind: str, i: int) -> str:
    return {
        "new": f"new{i}@example.org",
        "pending": f"pending{i}@example.org",
        "confirmed": f"user{i}@example.org",
        "suppressed": f"suppressed{i}@example.org",
        "known": f"user{i}@example.org",
        "unknown": f"nobody{i}@example.org",
    }[kind]


def _post(conn: http.client.HTTPConnection, path: str, address: str) -> float:
    """Seconds from sending the request to having read the whole answer."""
    body = f"email={address}&language=en"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    start = time.perf_counter()
    conn.request("POST", path, body=body, headers=headers)
    answer = conn.getresponse()
    answer.read()
    elapsed = time.perf_counter() - start
    if answer.status != 200:
        raise SystemExit(f"{path} {address}: HTTP {answer.status}")
    return elapsed


def _wait_idle(conn: http.client.HTTPConnection) -> None:
    """Until no job row waits (/healthz counts them): the next request starts on an idle
    server, instead of sometimes queueing behind this one's after-answer work (a bimodal
    wait that made medians jump by 10 % between runs on a loaded machine)."""
    for _ in range(1000):
        conn.request("GET", "/healthz")
        answer = conn.getresponse()
        if not json.loads(answer.read()).get("outbox", {}).get("job"):
            return
        time.sleep(0.005)


def _measure(port: int, requests: int, warmup: int, pause: float) -> dict[str, list[float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times: dict[str, list[float]] = {k: [] for k in (*SUBSCRIBE_KINDS, CONTROL, *MANAGE_KINDS)}
    order = list(times)
    rng = random.Random(1)
    for i in range(warmup + requests):
        rng.shuffle(order)
        for kind in order:
            path = "/manage" if kind in MANAGE_KINDS else "/subscribe/news"
            # Manage's and the control's addresses come after the others', so none is reused.
            index = i if kind in SUBSCRIBE_KINDS else warmup + requests + i
            elapsed = _post(conn, path, _address("new" if kind == CONTROL else kind, index))
            if i >= warmup:
                times[kind].append(elapsed)
            _wait_idle(conn)
            time.sleep(pause)
    conn.close()
    return times


def _report(label: str, kinds: tuple[str, ...], times: dict[str, list[float]]) -> float:
    medians = {k: statistics.median(times[k]) * 1000 for k in kinds}
    for kind in kinds:
        print(f"  {label} {kind:<11} median {medians[kind]:6.2f} ms  (n={len(times[kind])})")
    spread = (max(medians.values()) - min(medians.values())) / min(medians.values())
    print(f"  {label} spread      {spread:6.1%}")
    return spread


def _apart(server_pid: int) -> None:
    """Server on the last CPU, this client on the others, as a remote client would be: on a
    shared core the work a request queues after its answer would slow the client's read."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(server_pid, {cpus[-1]})
        os.sched_setaffinity(0, set(cpus[:-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per kind")
    parser.add_argument("--warmup", type=int, default=20, help="untimed rounds first")
    parser.add_argument("--pause", type=float, default=0.01, help="seconds after each request")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--source", type=Path, default=web_bench.ROOT,
                        help="the checkout whose newsletter package is served")
    args = parser.parse_args()
    web_bench.ROOT = args.source.resolve()  # _serve puts ROOT on the server's PYTHONPATH
    count = 2 * (args.requests + args.warmup)
    with web_bench._database(args.database) as url, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _prepare(folder, url, count)
        port = web_bench._free_port()
        server = web_bench._serve("newsletter.web:app", port, 1, folder, "asyncio")
        _apart(server.pid)
        try:
            times = _measure(port, args.requests, args.warmup, args.pause)
        finally:
            server.terminate()
            server.wait()
    print(f"timing bench: {args.database}, {args.requests} requests per kind, code from "
          f"{args.source}")
    worst = max(
        _report("/subscribe", SUBSCRIBE_KINDS, times), _report("/manage   ", MANAGE_KINDS, times)
    )
    noise = abs(statistics.median(times[CONTROL]) / statistics.median(times["new"]) - 1)
    print(f"  noise: two sets of new addresses differ by {noise:.1%}")
    print(f"spread within {LIMIT:.0%}: {'yes' if worst <= LIMIT else 'NO'} (worst {worst:.1%})")


if __name__ == "__main__":
    main()
