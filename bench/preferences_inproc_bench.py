"""In-process cost of the preferences page: GET /preferences/<token> as one ASGI call each (no
socket, no server), SQLite, the web_bench workspace (two lists, N subscribers).

    python bench/preferences_inproc_bench.py [--subscribers 300] [--requests 2000] [--rounds 5]

Prints the best round's µs per request, as wall time and as this process's CPU time (the
latter is less disturbed when other processes share the cores). Run it from another checkout's
root (with this file's path) to compare that checkout's code: the code is imported from the
current directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())
sys.path.insert(1, str(Path(__file__).resolve().parent))

from web_bench import SECRET, _workspace  # noqa: E402


async def _get(app, path: str) -> int:  # type: ignore[no-untyped-def]
    status = 0

    async def receive():  # type: ignore[no-untyped-def]
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):  # type: ignore[no-untyped-def]
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80), "root_path": "", "state": {}}
    await app(scope, receive, send)
    return status


async def _rounds(app, paths: list[str], requests: int,  # type: ignore[no-untyped-def]
                  rounds: int) -> list[tuple[float, float]]:
    assert await _get(app, paths[0]) == 200
    results = []
    for _ in range(rounds):
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(requests):
            await _get(app, paths[i % len(paths)])
        results.append(((time.perf_counter() - start) / requests * 1e6,
                        (time.process_time() - cpu) / requests * 1e6))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=300)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from newsletter.config import load_settings
    from newsletter.links import preferences_url
    from newsletter.services import build_services
    from newsletter.tokens import Signer
    from newsletter.web import create_app

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pairs = _workspace(folder, args.subscribers)
        app = create_app(build_services(load_settings(folder)), outbox_worker=False)
        signer = Signer(SECRET)
        paths = [preferences_url("", signer, sid, lid) for sid, lid in pairs]
        per_request = asyncio.run(_rounds(app, paths, args.requests, args.rounds))
        app.state.web.close()
    wall = min(w for w, _c in per_request)
    cpu = min(c for _w, c in per_request)
    print(f"GET /preferences/<token>: best {wall:.1f} µs wall, {cpu:.1f} µs CPU")


if __name__ == "__main__":
    main()
