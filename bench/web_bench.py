"""Web app throughput: GET /preferences/<token> and the RFC 8058 one-click POST, against a
bare Starlette "hello" route under the same uvicorn settings (newsletter.web.server, as
`newsletter serve` runs it).

    python bench/web_bench.py [--workers 1] [--seconds 10] [--connections 64] [--subscribers 2000]
                              [--database sqlite|postgresql] [--rounds 1]

A fresh workspace (SQLite, or a scratch PostgreSQL database) gets two lists and N confirmed
subscribers. Each target runs in its own uvicorn process (loopback only) and wrk, a second
process, loads it with 64 connections, rotating over every subscriber's token (Lua script).
Prints requests/s, p50/p99 latency and the ratio to the hello route. With --rounds N the three
targets are loaded in turn N times (the servers stay up), each round's ratios are taken
within that round, and the medians and spread over the rounds are printed: on a shared machine
the load drifts between runs a minute apart, which a single run's ratio takes for our own.
With more subscribers than one-click requests in the run (--subscribers 40000), every
one-click is a first-time unsubscribe: a write. Uses `wrk` (Debian: apt-get install wrk)
when installed, else a slower asyncio load generator in a second process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-key-0123456789"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


async def _hello(request):  # type: ignore[no-untyped-def]
    return PlainTextResponse("hello")


hello_app = Starlette(routes=[Route("/hello", _hello)])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _workspace(folder: Path, subscribers: int, url: str = "") -> list[tuple[int, int]]:
    """A migrated workspace (SQLite unless `url` is given) with two lists and N confirmed
    subscribers of the first; their (subscriber id, list id) pairs."""
    from newsletter.db.engine import make_engine
    from newsletter.db.migrate import upgrade
    from newsletter.db.models import MailingList, Subscriber, Subscription, utcnow

    url = url or f"sqlite:///{folder / 'bench.db'}"
    (folder / "newsletter.toml").write_text(
        f'[newsletter]\nname = "Bench"\nbase_url = "http://127.0.0.1"\nsecret_key = "{SECRET}"\n'
        f'[database]\nurl = "{url}"\n[web]\noutbox_interval = 0\n'
        "max_subscribes_per_ip = 1000000\n",
        encoding="utf-8",
    )
    engine = make_engine(url)
    upgrade(engine)
    now = utcnow()
    with engine.begin() as conn:
        list_id = conn.execute(
            MailingList.__table__.insert().values(
                slug="news",
                name="Network News",
                default_language="en",
                languages=["en", "fr", "es"],
                opt_in="double",
                public=True,
                description="",
                created_at=now,
            )
        ).inserted_primary_key[0]
        conn.execute(
            MailingList.__table__.insert().values(
                slug="events",
                name="Events",
                default_language="en",
                languages=["en"],
                opt_in="double",
                public=True,
                description="",
                created_at=now,
            )
        )
        conn.execute(
            Subscriber.__table__.insert(),
            [
                {
                    "email": f"user{i}@example.org",
                    "name": f"User {i}",
                    "language": ("en", "fr", "es")[i % 3],
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(subscribers)
            ],
        )
        ids = [row[0] for row in conn.exec_driver_sql("SELECT id FROM subscribers ORDER BY id")]
        conn.execute(
            Subscription.__table__.insert(),
            [
                {
                    "subscriber_id": sid,
                    "list_id": list_id,
                    "status": "confirmed",
                    "created_at": now,
                    "updated_at": now,
                    "confirmed_at": now,
                }
                for sid in ids
            ],
        )
    engine.dispose()
    return [(sid, list_id) for sid in ids]


def _lua(folder: Path, name: str, method: str, paths: list[str], start: int = 0) -> Path:
    body = 'wrk.body = "List-Unsubscribe=One-Click"\n' if method == "POST" else ""
    headers = (
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        if method == "POST"
        else ""
    )
    listing = ",\n".join(f'"{p}"' for p in paths)
    script = folder / f"{name}.lua"
    script.write_text(
        f'wrk.method = "{method}"\n{body}{headers}'
        f"local paths = {{\n{listing}\n}}\nlocal i = {start % len(paths)}\n"
        "request = function()\n  i = i % #paths + 1\n"
        "  return wrk.format(nil, paths[i])\nend\n",
        encoding="utf-8",
    )
    return script


def _serve(target: str, port: int, workers: int, workspace: Path, loop: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_WORKSPACE"] = str(workspace)
    env["PYTHONPATH"] = f"{ROOT}:{ROOT / 'bench'}"
    # The same launcher as `newsletter serve` (TCP_NODELAY with several workers; asyncio loop).
    command = [
        sys.executable,
        "-m",
        "newsletter.web.server",
        target,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        loop,
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    server = subprocess.Popen(command, env=env, cwd=workspace)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                time.sleep(0.5 * workers)  # let every worker process finish importing
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"uvicorn did not start for {target}")


def _wrk(url: str, script: Path | None, seconds: int, connections: int) -> dict[str, float]:
    """Run wrk (one thread) and read its summary."""
    command = [
        "wrk",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    if script:
        command += ["-s", str(script)]
    output = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout

    def millis(label: str) -> float:
        found = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not found:
            raise SystemExit(f"cannot read {label} from wrk:\n{output}")
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sent = re.search(r"(\d+) requests in", output)
    return {
        "requests": float(sent.group(1)) if sent else 0.0,
        "rps": rate,
        "p50": millis("50%"),
        "p99": millis("99%"),
        "non2xx": float(errors.group(1)) if errors else 0.0,
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far (/proc/<pid>/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for one in [pid, *map(int, children.read_text().split())]:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _measure(
    folder: Path,
    port: int,
    method: str,
    paths: list[str],
    seconds: int,
    connections: int,
    use_wrk: bool,
    start: int = 0,
) -> dict[str, float]:
    """One load run; the paths are taken in turn from the `start`-th (so a later run goes on
    where the last one stopped, and one-clicks stay first-time ones)."""
    if not use_wrk:
        from pyload import pyload

        return pyload(port, method, paths, seconds, connections, start)
    script = _lua(folder, f"load-{port}", method, paths, start)
    return _wrk(f"http://127.0.0.1:{port}/", script, seconds, connections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="Load every target in turn this many times; ratios are per round, then medians.",
    )
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--no-wrk", action="store_true", help="Use the Python load generator.")
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="PostgreSQL: a scratch database on 127.0.0.1:5432 (user postgres), dropped after.",
    )
    args = parser.parse_args()
    with _database(args.database) as url:
        _run(args, url)


@contextlib.contextmanager
def _database(kind: str) -> Iterator[str]:
    """'' for the workspace's own SQLite file, or the URL of a scratch PostgreSQL database."""
    if kind == "sqlite":
        yield ""
        return
    from sqlalchemy import create_engine, text

    name = f"nl_webbench_{os.getpid()}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _run(args: argparse.Namespace, url: str) -> None:
    use_wrk = shutil.which("wrk") is not None and not args.no_wrk
    from newsletter.tokens import Signer

    tool = "wrk -t1" if use_wrk else "Python asyncio client"
    with tempfile.TemporaryDirectory(prefix="web-bench-") as tmp:
        folder = Path(tmp)
        ids = _workspace(folder, args.subscribers, url)
        signer = Signer(SECRET)
        runs = [
            ("hello (bare Starlette)", "web_bench:hello_app", "GET", ["/hello"]),
            (
                "GET /preferences/<token>",
                "newsletter.web:app",
                "GET",
                [f"/preferences/{signer.sign('preferences', *pair)}" for pair in ids],
            ),
            (
                "POST /unsubscribe/<token> one-click",
                "newsletter.web:app",
                "POST",
                [f"/unsubscribe/{signer.sign('unsubscribe', *pair)}" for pair in ids],
            ),
        ]
        servers = []
        try:
            for _label, target, _method, _paths in runs:
                port = _free_port()
                servers.append((port, _serve(target, port, args.workers, folder, args.loop)))
            rounds = _rounds(args, folder, runs, [port for port, _ in servers], use_wrk,
                             [server.pid for _, server in servers])
        finally:
            for _port, server in servers:
                server.terminate()
                server.wait(timeout=20)
    print(
        f"uvicorn --workers {args.workers} --loop {args.loop}, {tool} -c{args.connections} "
        f"-d{args.seconds}s, {args.subscribers} subscribers, {args.database}, "
        f"{args.rounds} round(s)"
    )
    _report([label for label, *_ in runs], rounds)


def _rounds(
    args: argparse.Namespace,
    folder: Path,
    runs: list[tuple[str, str, str, list[str]]],
    ports: list[int],
    use_wrk: bool,
    pids: list[int],
) -> list[list[dict[str, float]]]:
    """Each round loads every target in turn (hello first), so a round's ratios are measured
    minutes apart at most, whatever else the machine is doing; paths go on where they
    stopped (first-time one-clicks stay first-time while there are subscribers left)."""
    done = [0] * len(runs)
    for n, ((_label, _target, method, paths), port) in enumerate(zip(runs, ports, strict=True)):
        warm = _measure(folder, port, method, paths, 2, args.connections, use_wrk)
        done[n] += int(warm["requests"])
    rounds = []
    for _ in range(args.rounds):
        measured = []
        for n, ((_label, _target, method, paths), port) in enumerate(
            zip(runs, ports, strict=True)
        ):
            cpu = _cpu_seconds(pids[n])
            result = _measure(folder, port, method, paths, args.seconds, args.connections,
                              use_wrk, done[n])
            # The server's CPU per 1,000 answers: steadier than req/s on a shared machine.
            result["cpu"] = (_cpu_seconds(pids[n]) - cpu) * 1000 / max(result["requests"], 1)
            done[n] += int(result["requests"])
            measured.append(result)
        rounds.append(measured)
    return rounds


def _report(labels: list[str], rounds: list[list[dict[str, float]]]) -> None:
    """Each round's figures, then the medians over the rounds (and their spread)."""
    print(f"{'route':40} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}  "
          "non-2xx  server CPU s/1000 req (ratio)")
    for number, measured in enumerate(rounds, 1):
        if len(rounds) > 1:
            print(f"round {number}")
        base = measured[0]["rps"]
        for label, r in zip(labels, measured, strict=True):
            print(
                f"{label:40} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} "
                f"{r['rps'] / base:6.2f}  {int(r['non2xx']):7}  {r['cpu']:.3f} "
                f"({r['cpu'] / measured[0]['cpu']:.2f})"
            )
    worst_ratio, worst_p99 = 1.0, 0.0
    if len(rounds) > 1:
        print("median over the rounds (min-max)")
    for n, label in enumerate(labels):
        ratios = [m[n]["rps"] / m[0]["rps"] for m in rounds]
        p99s = [m[n]["p99"] for m in rounds]
        cpu = statistics.median(m[n]["cpu"] for m in rounds)
        cpu_ratio = statistics.median(m[n]["cpu"] / m[0]["cpu"] for m in rounds)
        if len(rounds) > 1:
            rps = statistics.median(m[n]["rps"] for m in rounds)
            p50 = statistics.median(m[n]["p50"] for m in rounds)
            print(
                f"{label:40} {rps:9.0f} {p50:8.2f} {statistics.median(p99s):8.2f} "
                f"{statistics.median(ratios):6.2f}  ratio {min(ratios):.2f}-{max(ratios):.2f}, "
                f"p99 {min(p99s):.1f}-{max(p99s):.1f} ms, "
                f"CPU {cpu:.3f} s/1000 req ({cpu_ratio:.2f}x hello)"
            )
        if n:
            worst_ratio = min(worst_ratio, statistics.median(ratios))
            worst_p99 = max(worst_p99, statistics.median(p99s))
    verdict = "met" if worst_ratio >= 0.5 and worst_p99 <= 50 else "NOT met"
    print(f"target ratio >= 0.5 and p99 <= 50 ms: {verdict} "
          f"(ratio {worst_ratio:.2f}, p99 {worst_p99:.1f} ms)")

if __name__ == "__main__":
    main()
