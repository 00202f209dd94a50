"""`issue preview`: files on disk, and the live server that rebuilds on every change."""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.compose.preview import PreviewServer, watched_folders, write_preview
from newsletter.config import Settings
from tests.compose.conftest import EXAMPLE


def test_preview_writes_html_and_text_per_language(compose_ws: Path) -> None:
    out = compose_ws / "pv"
    result = CliRunner().invoke(cli, ["-w", str(compose_ws), "issue", "preview", EXAMPLE,
                                      "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["en.html", "en.txt", "es.html", "es.txt", "fr.html", "fr.txt",
                     "regional-meeting.png"]
    assert "https://news.example.org/manage" in (out / "fr.html").read_text()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_preview_server_rebuilds_when_the_issue_changes(compose_ws: Path,
                                                        settings: Settings) -> None:
    out = compose_ws / "live"
    server = PreviewServer(out, watched_folders(compose_ws, EXAMPLE),
                           lambda: write_preview(compose_ws, EXAMPLE, settings, ["en"], out))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), server.handler())
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        status, page = _get(base + "/en.html")
        assert status == 200 and "Dear friends," in page and "/__version" in page
        version = _get(base + "/__version")[1]
        assert _get(base + "/%2e%2e/newsletter.toml")[0] == 404
        source = compose_ws / "issues" / EXAMPLE / "en.md"
        source.write_text(source.read_text().replace("Dear {{", "Hello {{"), encoding="utf-8")
        os.utime(source, (1e10, 1e10))
        assert _get(base + "/__version")[1] != version
        assert "Hello friends," in _get(base + "/en.html")[1]
        source.write_text(source.read_text() + "\n{{ oops }}\n", encoding="utf-8")
        os.utime(source, (2e10, 2e10))
        status, page = _get(base + "/en.html")
        assert status == 500 and "unknown placeholder {{ oops }}" in page
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
