"""bench/web_bench.py's load generator when wrk is missing: an asyncio client in a second
process, 64 keep-alive connections sending requests back to back (slower than wrk, so it may
itself be the limit for the hello route)."""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import time


async def _client(
    port: int, requests: list[bytes], offset: int, until: float, latencies: list[float]
) -> int:
    """One keep-alive connection sending requests back to back; returns non-2xx count."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    bad, i = 0, offset
    while time.monotonic() < until:
        started = time.perf_counter()
        writer.write(requests[i % len(requests)])
        i += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        await reader.readexactly(int(length.group(1)) if length else 0)
        latencies.append(time.perf_counter() - started)
        bad += not head.startswith(b"HTTP/1.1 2")
    writer.close()
    return bad


def _process(port: int, requests: list[bytes], seconds: int, connections: int, out) -> None:  # type: ignore[no-untyped-def]
    async def run() -> tuple[list[float], int]:
        latencies: list[float] = []
        until = time.monotonic() + seconds
        bad = await asyncio.gather(
            *(_client(port, requests, n * 7, until, latencies) for n in range(connections))
        )
        return latencies, sum(bad)

    latencies, bad = asyncio.run(run())
    latencies.sort()
    out.put(
        {
            "requests": float(len(latencies)),
            "rps": len(latencies) / seconds,
            "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[int(len(latencies) * 0.99)] * 1000,
            "non2xx": float(bad),
        }
    )


def pyload(
    port: int, method: str, paths: list[str], seconds: int, connections: int, start: int = 0
) -> dict:
    """The fallback when wrk is missing: an asyncio client in a second process (it is slower
    than wrk, so it may itself be the limit for the hello route)."""
    body = b"List-Unsubscribe=One-Click" if method == "POST" else b""
    extra = (
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
        if method == "POST"
        else ""
    )
    requests = [
        f"{method} {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode() + body for p in paths
    ]
    requests = requests[start % len(requests):] + requests[: start % len(requests)]
    out: multiprocessing.Queue = multiprocessing.Queue()
    worker = multiprocessing.Process(
        target=_process, args=(port, requests, seconds, connections, out)
    )
    worker.start()
    result = out.get(timeout=seconds + 60)
    worker.join()
    return result
