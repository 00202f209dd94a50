"""Publish before sending: `newsletter serve` is the public side, images and web version included.

A real uvicorn server runs the app (archive under /archive/) and a real SMTP server receives the
mails; the example issue carries a picture. The editor's view: the pictures of the message that
arrived load in Chromium, a missing one stops the send before anything is queued.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.models import Delivery, Issue
from newsletter.services import build_services
from tests.conftest import CHROMIUM_ARGS, SECRET, require_chromium, require_module
from tests.delivery.sender_fixtures import configure, seed

EXAMPLE = Path(__file__).resolve().parents[2] / "newsletter" / "skeleton" / "issues" \
    / "2026-11-coalition-update"
SLUG = EXAMPLE.name
ARGS = CHROMIUM_ARGS


@dataclass
class Public:
    """The running public side: its base URL and the workspace it serves."""

    base: str
    workspace: Path

    def get(self, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        """A raw request: the path goes out exactly as written (no client-side clean-up)."""
        parts = urlsplit(self.base)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            conn.endheaders()
            response = conn.getresponse()
            body = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        finally:
            conn.close()


@pytest.fixture
def public(run, workspace: Path, db_url: str, smtp_server) -> Iterator[Public]:
    """`newsletter serve`'s app under uvicorn in a thread; base_url is that server."""
    import uvicorn

    from newsletter.web import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    configure(workspace, db_url, smtp_server.port)
    config = workspace / "newsletter.toml"
    config.write_text(config.read_text("utf-8").replace("https://news.example.org", base), "utf-8")
    shutil.copytree(EXAMPLE, workspace / "issues" / SLUG)
    seed(workspace, ["en", "fr", "en"])
    settings = load_settings(workspace, environ={})
    engine = make_engine(settings.database_url)
    server = uvicorn.Server(uvicorn.Config(create_app(build_services(settings, engine=engine),
                                                      outbox_worker=False), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield Public(base, workspace)
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()
    engine.dispose()


def _queued(workspace: Path) -> tuple[int, int]:
    engine = make_engine(load_settings(workspace, environ={}).database_url)
    with engine.connect() as conn:
        counts = (conn.execute(select(func.count()).select_from(Issue)).scalar_one(),
                  conn.execute(select(func.count()).select_from(Delivery)).scalar_one())
    engine.dispose()
    return counts


@pytest.mark.browser
@pytest.mark.sqlite_only
def test_every_picture_of_a_received_message_loads_in_a_browser(run, public: Public,
                                                                 smtp_server) -> None:
    sync_api = require_module("playwright.sync_api")
    chromium = require_chromium()
    run("send", SLUG, "--yes", "--publish-check")
    assert smtp_server.wait_for(3)
    messages = smtp_server.parsed()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = browser.new_page()
            for message in messages:
                html = message.get_body(("html",)).get_content()
                # As a mail client shows it: the message's HTML, pictures fetched from their URLs.
                page.set_content(html, wait_until="load")
                images = page.eval_on_selector_all(
                    "img", "els => els.map(i => [i.currentSrc, i.naturalWidth])")
                assert images, "the example issue has a picture"
                broken = [src for src, width in images if width == 0]
                assert not broken, f"{message['To']}: pictures did not load: {broken}"
                assert any("/archive/" in src for src, _ in images)
        finally:
            browser.close()


def test_send_publishes_the_web_version_and_lists_it_only_once_sent(run, public: Public,
                                                                    smtp_server) -> None:
    run("send", SLUG, "--test-to", "editor@example.org", "--publish-check")
    page = f"/archive/en/2026/{SLUG}/"
    status, headers, body = public.get(page)
    assert status == 200 and b"<main" in body
    assert "max-age=300" in headers["cache-control"]
    # Reachable by its URL, but the test copy does not put it in the index or the feed.
    assert public.get("/archive/en/")[0] == 404
    assert public.get("/archive/en/feed.xml")[0] == 404

    run("send", SLUG, "--yes", "--publish-check")
    status, _, index = public.get("/archive/en/")
    assert status == 200 and f"2026/{SLUG}/".encode() in index
    assert SLUG.encode() in public.get("/archive/en/feed.xml")[2]
    assert public.get(f"/archive/fr/2026/{SLUG}/")[0] == 200


def test_a_picture_that_does_not_answer_stops_the_send_before_anything_is_queued(
    run, public: Public, smtp_server
) -> None:
    missing = f"{public.base}/archive/en/2026/{SLUG}/no-such-picture.png"
    en = public.workspace / "issues" / SLUG / "en.md"
    en.write_text(en.read_text("utf-8") + f"\n![A chart of arrivals]({missing})\n", "utf-8")
    refused = run("send", SLUG, "--yes", "--publish-check", ok=False)
    assert refused.exit_code != 0
    error = refused.output.strip().splitlines()[-1]  # after the plan and the warnings
    assert error.startswith("Error:") and "Traceback" not in refused.output
    assert missing + " answers 404" in error and "--no-publish-check" in error
    assert f"/archive/en/2026/{SLUG}/ " not in error  # the web version itself is live
    assert _queued(public.workspace) == (0, 0)
    assert smtp_server.messages == []


def test_with_nothing_serving_the_archive_the_send_is_refused_and_says_what_to_do(
    run, workspace: Path, db_url: str, smtp_server
) -> None:
    configure(workspace, db_url, smtp_server.port)
    config = workspace / "newsletter.toml"
    with socket.socket() as probe:  # a port nobody listens on: the public side is down
        probe.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{probe.getsockname()[1]}"
    config.write_text(config.read_text("utf-8").replace("https://news.example.org", base)
                      .replace("publish_check = false", "publish_check = true"), "utf-8")
    shutil.copytree(EXAMPLE, workspace / "issues" / SLUG)
    seed(workspace, ["en"])
    started = time.monotonic()
    refused = run("send", SLUG, "--yes", ok=False)  # on by default ([send] publish_check)
    assert time.monotonic() - started < 30
    text = refused.output
    assert f"{base}/archive/en/2026/{SLUG}/ cannot be reached" in text
    assert "newsletter serve" in text and "--no-publish-check" in text
    assert _queued(workspace) == (0, 0) and smtp_server.messages == []

    run("send", SLUG, "--yes", "--no-publish-check")
    assert smtp_server.wait_for(1)


def test_archive_files_have_cache_headers_and_nothing_outside_the_site_is_served(
    run, public: Public
) -> None:
    run("send", SLUG, "--test-to", "editor@example.org", "--publish-check")
    folder = public.workspace / "site" / "en" / "2026" / SLUG
    picture = next(p.name for p in folder.iterdir() if p.suffix == ".png")
    status, headers, body = public.get(f"/archive/en/2026/{SLUG}/{picture}")
    assert status == 200 and body.startswith(b"\x89PNG")
    assert headers["content-type"] == "image/png"
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["cross-origin-resource-policy"] == "cross-origin"
    status, headers, _ = public.get(f"/archive/en/2026/{SLUG}/")
    csp = headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    status, headers, _ = public.get(f"/archive/en/2026/{SLUG}")
    assert status == 307 and headers["location"] == public.base + f"/archive/en/2026/{SLUG}/"
    for path in ("/archive/../newsletter.toml", "/archive/%2e%2e/newsletter.toml",
                 "/archive/..%2fnewsletter.toml", "/archive/en/../../newsletter.toml",
                 "/archive/%2e%2e%2f%2e%2e%2fnewsletter.toml", "/archive/.archive-manifest.json",
                 "/archive//etc/passwd", "/archive/%00", "/archive/en/2026/%2e%2e/%2e%2e/%2e%2e/"
                 "newsletter.toml"):
        status, _, body = public.get(path)
        assert status in (400, 404), path
        assert SECRET.encode() not in body and b"root:" not in body, path
