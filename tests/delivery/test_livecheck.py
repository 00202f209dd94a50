"""The publish check's HEAD requests: short timeout, in parallel, every failing URL reported.

Real servers on loopback: a stdlib HTTP server, and a socket that accepts and never answers
(a hung public side must not hang the send).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from newsletter.delivery.livecheck import failing_urls, image_urls


class _Handler(BaseHTTPRequestHandler):
    """/ok answers 200, /gone 404, /no-head refuses HEAD (405) but answers GET."""

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        code = {"/ok": 200, "/no-head": 405}.get(self.path, 404)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        code = 200 if self.path in ("/ok", "/no-head") else 404
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_base() -> Iterator[str]:
    """Accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_every_failing_url_is_named_and_working_ones_are_not(http_base: str) -> None:
    urls = [f"{http_base}/ok", f"{http_base}/gone", f"{http_base}/no-head",
            f"{http_base}/also-gone", f"{http_base}/ok"]
    assert failing_urls(urls) == [(f"{http_base}/gone", "answers 404"),
                                  (f"{http_base}/also-gone", "answers 404")]


def test_a_hung_server_costs_one_timeout_not_one_per_url(silent_base: str) -> None:
    urls = [f"{silent_base}/picture-{i}.png" for i in range(8)]
    started = time.monotonic()
    failing = failing_urls(urls, timeout=1.0)
    elapsed = time.monotonic() - started
    assert [url for url, _ in failing] == urls
    assert all("cannot be reached" in problem for _, problem in failing)
    assert elapsed < 4.0, f"{elapsed:.1f} s: the URLs were not checked in parallel"


def test_the_urls_checked_are_the_pictures_an_email_loads() -> None:
    html = (
        '<img src="https://news.example.org/archive/en/2026/x/a.1234567890.png" alt="">'
        "<img alt='' src='https://cdn.example.org/logo.png?w=120&amp;h=40'>"
        '<td background="https://news.example.org/bg.jpg" style="background-image:'
        ' url(\'https://news.example.org/bg2.jpg\')">'
        '<img src="data:image/png;base64,AAAA"><img src="cid:logo">'
        '<a href="https://news.example.org/not-a-picture">link</a>'
        '<img src="https://news.example.org/archive/en/2026/x/a.1234567890.png">'
    )
    assert image_urls(html) == [
        "https://news.example.org/archive/en/2026/x/a.1234567890.png",
        "https://cdn.example.org/logo.png?w=120&h=40",
        "https://news.example.org/bg.jpg",
        "https://news.example.org/bg2.jpg",
    ]
