"""Archive fixtures: a newsroom that records issues as the sender would, and a site builder.

Rows are inserted with SQLAlchemy Core into the real tables, exactly as `newsletter send` leaves
them: an issue row, and one edition per language whose sent_at is set once it went out.
"""

from __future__ import annotations

import email
import io
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from aiosmtpd.controller import Controller
from lxml import html as lxml_html
from mjml import mjml2html
from PIL import Image
from sqlalchemy import Engine, insert, select, update

from newsletter.archive.builder import BuildReport, build_archive
from newsletter.config import load_settings
from newsletter.db.models import Edition, Issue, MailingList
from newsletter.links import manage_url
from newsletter.services import Services

BASE_URL = "https://news.example.org"
ARCHIVE_URL = BASE_URL + "/archive"
T0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "archive"
WORDS = {
    "en": ("News from the network", "Read the statement and sign on."),
    "fr": ("Nouvelles du réseau", "Lisez la déclaration et signez-la."),
    "es": ("Noticias de la red", "Lea la declaración y fírmela."),
}


def png_bytes(colour: str = "teal", size: tuple[int, int] = (40, 30)) -> bytes:
    """A real, small PNG picture (the archive publishes only pictures it can read)."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def web_html(language: str, title: str, *, image: str | None = None, extra: str = "") -> str:
    """A web version as the composer makes it: MJML output with a generic manage link."""
    intro = WORDS.get(language, WORDS["en"])[1]
    picture = f'<mj-image src="{image}" alt="Delegates at the summit" />' if image else ""
    paragraphs = "".join(
        f"<p>{intro} Paragraph {i} about refugees and migrants.</p>" for i in range(3)
    )
    mjml = f"""<mjml lang="{language}"><mj-head><mj-title>{title}</mj-title>
<mj-preview>{intro}</mj-preview></mj-head><mj-body background-color="#f4f4f4">
<mj-section background-color="#ffffff"><mj-column>{picture}
<mj-text><h1>{title}</h1>{paragraphs}{extra}</mj-text>
<mj-text><p><a href="{manage_url(BASE_URL)}">Manage your subscription</a></p></mj-text>
</mj-column></mj-section></mj-body></mjml>"""
    return mjml2html(mjml)


@dataclass
class Newsroom:
    """Records lists, issues and sent editions in the database, as the sender would."""

    engine: Engine
    workspace: Path
    lists: dict[str, int] = field(default_factory=dict)
    issues: dict[str, int] = field(default_factory=dict)
    counter: int = 0

    def add_list(self, slug: str = "news", name: str = "Network News",
                 languages: tuple[str, ...] = ("en", "fr", "es"), public: bool = True) -> int:
        with self.engine.begin() as conn:
            list_id = conn.execute(insert(MailingList).values(
                slug=slug, name=name, default_language=languages[0], languages=list(languages),
                public=public, created_at=T0,
            ).returning(MailingList.id)).scalar_one()
        self.lists[slug] = list_id
        return list_id

    def issue(self, slug: str, *, languages: tuple[str, ...] = ("en", "fr", "es"),
              sent: tuple[str, ...] | None = None, status: str = "sent",
              list_slug: str = "news", day: str | None = None, image: str | None = None,
              extra: str = "") -> int:
        """An issue with an edition per language; those in `sent` carry a sent_at."""
        if list_slug not in self.lists:
            self.add_list(list_slug)
        self.counter += 1
        sent = languages if sent is None else sent
        when = T0 + timedelta(days=7 * self.counter)
        day = day or when.date().isoformat()
        with self.engine.begin() as conn:
            issue_id = conn.execute(insert(Issue).values(
                slug=slug, list_id=self.lists[list_slug], status=status, created_at=when,
                sent_at=when if status == "sent" else None, data={},
            ).returning(Issue.id)).scalar_one()
            for language in languages:
                title = f"{WORDS.get(language, WORDS['en'])[0]} {self.counter}"
                html = web_html(language, title, image=image, extra=extra)
                conn.execute(insert(Edition).values(
                    issue_id=issue_id, language=language, subject=title, title=title,
                    preheader=WORDS.get(language, WORDS["en"])[1], issue_date=day,
                    volume="22", number=f"{self.counter:02d}", web_html=html, text=title,
                    content_hash=str(hash(html)), data={},
                    sent_at=when if language in sent and status != "draft" else None,
                ))
        self.issues[slug] = issue_id
        return issue_id

    def picture(self, slug: str, data: bytes, name: str = "photo.png") -> Path:
        """A file beside an issue's Markdown, where the composer and the archive look."""
        folder = self.workspace / "issues" / slug
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        return folder / name

    def send(self, slug: str, language: str, at: datetime | None = None) -> None:
        """Mark one more language of an issue as sent (a late translation)."""
        with self.engine.begin() as conn:
            conn.execute(update(Edition).where(
                Edition.issue_id == self.issues[slug], Edition.language == language
            ).values(sent_at=at or T0 + timedelta(days=300)))

    def edition_html(self, slug: str, language: str) -> str:
        with self.engine.connect() as conn:
            return conn.execute(select(Edition.web_html).where(
                Edition.issue_id == self.issues[slug], Edition.language == language
            )).scalar_one()


@pytest.fixture
def newsroom(services: Services, workspace: Path) -> Newsroom:
    """Lists and issues in the test database (SQLite and PostgreSQL)."""
    return Newsroom(services.engine, workspace)


@dataclass
class Builder:
    workspace: Path
    engine: Engine
    out: Path

    def __call__(self, clean: bool = False, now: datetime = NOW, **settings: Any) -> BuildReport:
        overrides = {"archive": settings} if settings else None
        return build_archive(settings=load_settings(self.workspace, overrides=overrides),
                             engine=self.engine, out=self.out, clean=clean, now=now)


@pytest.fixture
def build(services: Services, workspace: Path, tmp_path: Path) -> Builder:
    """Build the archive of the test workspace into tmp_path/site."""
    return Builder(workspace, services.engine, tmp_path / "site")


def site_files(out: Path) -> dict[str, Path]:
    """Every file of a built site by its path relative to the output folder."""
    return {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file()}


def snapshot(out: Path) -> dict[str, tuple[int, bytes]]:
    """mtime and bytes of every file, to tell which ones a rebuild touched."""
    return {rel: (p.stat().st_mtime_ns, p.read_bytes()) for rel, p in site_files(out).items()}


def internal_links(out: Path, page: Path) -> list[tuple[str, str]]:
    """(attribute value, site path) of every href/src of a page that stays on the archive."""
    doc = lxml_html.fromstring(page.read_bytes())
    here = "/" + page.relative_to(out).as_posix()
    found = []
    for element in doc.iter():
        for attr in ("href", "src"):
            value = element.get(attr)
            if not value or value.startswith(("mailto:", "#")):
                continue
            absolute = urljoin("https://archive.invalid" + here, value)
            if value.startswith(ARCHIVE_URL):
                absolute = "https://archive.invalid" + value[len(ARCHIVE_URL):]
            parts = urlsplit(absolute)
            if parts.netloc == "archive.invalid":
                found.append((value, parts.path))
    return found


def resolves(out: Path, site_path: str) -> bool:
    """Whether a static server would answer this path from the output folder."""
    target = out / site_path.lstrip("/")
    if site_path.endswith("/"):
        target = target / "index.html"
    return target.is_file()


EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


class Sink:
    """What an SMTP server received: each recipient, and each message parsed."""

    def __init__(self) -> None:
        self.recipients: list[str] = []
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.recipients += envelope.rcpt_tos
        parsed = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[int, Sink]]:
    """An aiosmtpd server on a free loopback port that accepts and keeps every message."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, sink
    controller.stop()
