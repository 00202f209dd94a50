"""Running an ASGI app under uvicorn the way `newsletter serve` and bench/web_bench.py both do.

Two settings differ from plain `uvicorn --workers N`, each for a measured reason (bench/RESULTS.md):

- With several workers uvicorn binds the socket itself without IPPROTO_TCP, so asyncio skips
  TCP_NODELAY on accepted connections and every keep-alive response with a separate body write
  waits for the client's delayed ACK (about 40 ms: 1,450 req/s instead of 18,000 on loopback).
  Setting TCP_NODELAY on the listening socket fixes it: Linux copies it to accepted sockets.
- The default event loop is asyncio's: under saturation uvloop served some connections
  hundreds of milliseconds late (p99 190-340 ms against 17-25 ms), for a few percent more req/s.

    python -m newsletter.web.server newsletter.web:app --port 8000 --workers 2
"""

from __future__ import annotations

import argparse
import os
import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess


class NoDelayConfig(uvicorn.Config):
    """uvicorn's Config whose shared listening socket has TCP_NODELAY (see the module doc)."""

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def run(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    loop: str = "asyncio",
    log_level: str = "info",
    access_log: bool = True,
    factory: bool = False,
) -> None:
    """Serve `app` until interrupted: an ASGI app, or with `factory` a function that builds
    one; when workers > 1, an import string or a picklable factory each worker calls."""
    config = NoDelayConfig(
        app,
        **_log_config(log_level),
        host=host,
        port=port,
        workers=workers,
        loop=loop,  # type: ignore[arg-type]
        log_level=log_level,
        access_log=access_log,
        proxy_headers=True,
        server_header=False,
        factory=factory,
    )
    if workers > 1:
        if not isinstance(app, str) and not factory:
            raise ValueError("several workers need the app as an import string or a factory")
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(config).run()


def _log_config(log_level: str) -> dict[str, Any]:
    """uvicorn's own logging, unless `--log-format json` asked for one JSON object per line
    (newsletter/logs.py), in this process and in each `serve --workers` process."""
    from newsletter.logs import ENVIRONMENT, logging_config

    if os.environ.get(ENVIRONMENT, "text") == "text":
        return {}
    return {"log_config": logging_config(os.environ[ENVIRONMENT], log_level.upper())}


def main() -> None:
    """Command line for benchmarks: the same server settings for any ASGI app."""
    parser = argparse.ArgumentParser(description="Serve an ASGI app like `newsletter serve`.")
    parser.add_argument("app", help="import string, e.g. newsletter.web:app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "auto"], default="asyncio")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args()
    run(
        args.app,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop=args.loop,
        log_level=args.log_level,
        access_log=not args.no_access_log,
    )


if __name__ == "__main__":
    main()
