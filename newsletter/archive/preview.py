"""A localhost preview of the built archive (the real site is served by any static server)."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from newsletter.archive.writer import INPUTS, MANIFEST


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map,
                      ".xml": "application/xml", ".html": "text/html; charset=utf-8"}

    def guess_type(self, path: Any) -> str:
        if str(path).endswith("feed.xml"):
            return "application/atom+xml; charset=utf-8"
        return super().guess_type(path)

    def send_head(self) -> Any:
        if MANIFEST in self.path or INPUTS in self.path:
            self.send_error(404)
            return None
        return super().send_head()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


def make_server(root: Path, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for `root`; port 0 picks a free port (see server.server_address)."""
    handler = functools.partial(_Handler, directory=str(root))
    return ThreadingHTTPServer((host, port), handler)


def serve_in_thread(root: Path, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Start a preview server in a daemon thread; call .shutdown() then .server_close()."""
    server = make_server(root, host, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
