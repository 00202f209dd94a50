"""Preview: write DIR/<lang>.html and .txt, optionally for a real subscriber, or serve them live."""

from __future__ import annotations

import html
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy import Engine, func, select

from newsletter import links
from newsletter.audience.lists import list_by_slug
from newsletter.compose.compiler import compile_issue
from newsletter.compose.errors import ComposeError
from newsletter.compose.layout import search_path
from newsletter.compose.slots import Slots
from newsletter.compose.source import load_issue
from newsletter.config import Settings
from newsletter.db.models import MailingList
from newsletter.db.tables import SUBSCRIBERS
from newsletter.errors import NotFoundError
from newsletter.images import ImageError, cache_for, is_image, refuse
from newsletter.keyring import link_signer

RELOAD_SCRIPT = """<script>(function(){var v=null;setInterval(function(){
fetch('/__version').then(function(r){return r.text()}).then(function(t){
if(v!==null&&t!==v){location.reload()}v=t}).catch(function(){})},1000)})();</script>"""


@dataclass(frozen=True)
class Recipient:
    """A subscriber's slots and language, for `--as`."""

    slots: Slots
    language: str | None


def list_languages(engine: Engine, list_slug: str) -> list[str] | None:
    """The languages a list offers, or None when the list is not in the database."""
    with engine.connect() as conn:
        info = list_by_slug(conn, list_slug)
    return None if info is None else [str(x) for x in info.languages]


def list_default_language(engine: Engine, list_slug: str) -> str | None:
    """A list's default language, or None when the list is not in the database.

    It reads that one column only, so it works on a database not yet upgraded.
    """
    with engine.connect() as conn:
        found = conn.execute(select(MailingList.default_language).where(
            MailingList.slug == list_slug)).scalar()
    return str(found) if found else None


def recipient(settings: Settings, engine: Engine, list_slug: str, email: str) -> Recipient:
    """The real slots of one subscriber (their signed unsubscribe and preferences links)."""
    signer = link_signer(settings)  # first: no secret key is refused before any lookup
    with engine.connect() as conn:
        info = list_by_slug(conn, list_slug)
        row = conn.execute(
            select(
                SUBSCRIBERS.c.id,
                SUBSCRIBERS.c.name,
                SUBSCRIBERS.c.language,
                SUBSCRIBERS.c.attributes,
            ).where(func.lower(SUBSCRIBERS.c.email) == email.strip().lower())
        ).first()
    if info is None:
        raise NotFoundError(f"no list {list_slug!r} in the database")
    list_id = info.id
    if row is None:
        raise NotFoundError(f"no subscriber {email!r}")
    base = settings.newsletter.base_url
    slots = Slots(
        name=row.name or "",
        unsubscribe_url=links.unsubscribe_url(base, signer, row.id, list_id),
        preferences_url=links.preferences_url(base, signer, row.id, list_id),
        attributes={str(k): str(v) for k, v in (row.attributes or {}).items()},
    )
    return Recipient(slots, row.language)


def public_slots(settings: Settings) -> Slots:
    """Slots for an anonymous preview: links go to the generic manage page."""
    manage = links.manage_url(settings.newsletter.base_url)
    return Slots(unsubscribe_url=manage, preferences_url=manage)


def write_preview(
    workspace: Path,
    slug: str,
    settings: Settings,
    languages: Sequence[str] | None,
    out: Path,
    slots: Slots | None = None,
) -> list[Path]:
    """Compile and fill each language; images beside the issue are copied next to the files."""
    source = load_issue(workspace, slug)
    chosen = list(languages or source.languages)
    for lang in chosen:
        if lang not in source.editions:
            raise ComposeError(f"issue {slug!r} has no {lang}.md")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for lang in chosen:
        edition = compile_issue(source, lang, settings, asset_base_url="")
        html, text = edition.fill(slots or public_slots(settings))
        for asset in edition.assets:
            _copy_asset(source.path / asset, out / asset, settings)
        for suffix, content in ((".html", html), (".txt", text)):
            path = out / f"{lang}{suffix}"
            path.write_text(content, encoding="utf-8")
            written.append(path)
    return written


def _copy_asset(path: Path, target: Path, settings: Settings) -> None:
    """A file as subscribers will get it: pictures processed (an unreadable one is left out)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        refuse(path.name)
        if not is_image(path.name):
            shutil.copyfile(path, target)
            return
        target.write_bytes(cache_for(settings.workspace).get(path.read_bytes(), path.name))
    except ImageError:
        target.unlink(missing_ok=True)  # `issue check` says why; the preview shows it missing


def _fingerprint(folders: Sequence[Path]) -> float:
    stamps = [p.stat().st_mtime for f in folders if f.is_dir() for p in f.rglob("*") if p.is_file()]
    return max(stamps, default=0.0)


class PreviewServer:
    """Serves the preview folder and rebuilds it when the issue or its templates change."""

    def __init__(self, out: Path, watch: Sequence[Path], build: Callable[[], list[Path]]) -> None:
        self.out, self.watch, self.build = out, list(watch), build
        self.version = 0
        self.error = ""
        self._stamp = -1.0
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Rebuild when something changed; keep the error to show instead of a page."""
        with self._lock:
            stamp = _fingerprint(self.watch)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                self.build()
                self.error = ""
            except ComposeError as exc:
                self.error = str(exc)
            self.version += 1

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                server.refresh()
                name = unquote(self.path.split("?")[0]).lstrip("/") or "index.html"
                if name == "__version":
                    return self._send(200, str(server.version).encode(), "text/plain")
                if server.error:
                    page = f"<pre>{html.escape(server.error)}</pre>{RELOAD_SCRIPT}"
                    return self._send(500, page.encode(), "text/html; charset=utf-8")
                if name == "index.html":
                    items = "".join(
                        f'<li><a href="{p.name}">{p.name}</a></li>'
                        for p in sorted(server.out.glob("*.*"))
                        if p.suffix in (".html", ".txt")
                    )
                    return self._send(
                        200, f"<ul>{items}</ul>{RELOAD_SCRIPT}".encode(), "text/html; charset=utf-8"
                    )
                path = (server.out / name).resolve()
                if not path.is_relative_to(server.out.resolve()) or not path.is_file():
                    return self._send(404, b"not found", "text/plain")
                body = path.read_bytes()
                kind = {
                    ".html": "text/html; charset=utf-8",
                    ".txt": "text/plain; charset=utf-8",
                    ".png": "image/png",
                    ".jpg": "image/jpeg",
                    ".jpeg": "image/jpeg",
                    ".gif": "image/gif",
                }.get(path.suffix.lower(), "application/octet-stream")
                if path.suffix == ".html":
                    body = body.replace(b"</body>", RELOAD_SCRIPT.encode() + b"</body>")
                return self._send(200, body, kind)

        return Handler

    def serve(self, host: str, port: int, ready: Callable[[str], None]) -> None:
        """Serve until interrupted."""
        self.refresh()
        httpd = ThreadingHTTPServer((host, port), self.handler())
        ready(f"http://{host}:{httpd.server_address[1]}/")
        try:
            httpd.serve_forever(poll_interval=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            httpd.server_close()


def watched_folders(workspace: Path, slug: str) -> list[Path]:
    """The issue folder and every template folder it can use."""
    issue = workspace / "issues" / slug
    return [issue, *(Path(p) for p in search_path(workspace, issue))]
