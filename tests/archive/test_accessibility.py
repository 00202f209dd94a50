"""The archive built from the example issue, checked by axe-core in Chromium (SQLite only)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import html as lxml_html
from sqlalchemy import insert

from newsletter.archive.builder import build_archive
from newsletter.archive.preview import serve_in_thread
from newsletter.compose.compiler import compile_issue
from newsletter.compose.source import load_issue
from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.models import Edition, Issue
from tests.archive.conftest import NOW, Newsroom
from tests.axe import assert_accessible, axe_source
from tests.conftest import chromium_browser, write_config

EXAMPLE = Path(__file__).resolve().parents[2] / "issues" / "2026-11-coalition-update"
ISSUE = "/{lang}/2026/2026-11-coalition-update/"
PAGES = ["/", "/en/", "/fr/", ISSUE.format(lang="en"), ISSUE.format(lang="fr"),
         ISSUE.format(lang="es"), "/404.html", "/fr/events/"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Path:
    """The archive of the example issue, sent in English, French and Spanish."""
    root = tmp_path_factory.mktemp("a11y")
    db = root / "newsletter.db"
    shutil.copy(sqlite_template, db)
    workspace = root / "ws"
    write_config(workspace, f"sqlite:///{db}")
    shutil.copytree(EXAMPLE, workspace / "issues" / EXAMPLE.name)
    settings = load_settings(workspace)
    source = load_issue(workspace, EXAMPLE.name)
    engine = make_engine(f"sqlite:///{db}")
    list_id = Newsroom(engine, workspace).add_list()
    sent = datetime(2026, 11, 20, 8, tzinfo=UTC)
    with engine.begin() as conn:
        issue_id = conn.execute(insert(Issue).values(
            slug=source.slug, list_id=list_id, status="sent", sent_at=sent, data={},
        ).returning(Issue.id)).scalar_one()
        for language in ("en", "fr", "es"):
            compiled = compile_issue(source, language, settings)
            conn.execute(insert(Edition).values(
                issue_id=issue_id, language=language, subject=compiled.subject,
                title=compiled.title, preheader=compiled.preheader, issue_date=compiled.date,
                volume=compiled.volume, number=compiled.number, web_html=compiled.web_html,
                text="", content_hash=compiled.content_hash, sent_at=sent, data={},
                compiled=compiled.to_json(),
            ))
    out = root / "site"
    build_archive(settings=settings, engine=engine, out=out, now=NOW)
    engine.dispose()
    return out


def test_headings_go_down_one_level_at_a_time(site: Path) -> None:
    for path in PAGES:
        page = site / (path.lstrip("/") + ("index.html" if path.endswith("/") else ""))
        doc = lxml_html.fromstring(page.read_text(encoding="utf-8"))
        levels = [int(h.tag[1]) for h in doc.iter("h1", "h2", "h3", "h4", "h5", "h6")]
        assert levels[:1] == [1], path
        assert all(b <= a + 1 for a, b in zip(levels, levels[1:], strict=False)), (path, levels)


@pytest.fixture(scope="module")
def browser(site: Path) -> Iterator[tuple[Any, str]]:
    """One Chromium for the module, and the archive served on localhost."""
    source = axe_source()
    server = serve_in_thread(site)
    with chromium_browser() as chromium:
        chromium.axe = source
        yield chromium, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# Only issue pages change in dark mode: they keep the email's dark styles.
VIEWS = [(path, "light") for path in PAGES] + [(p, "dark") for p in PAGES if p.count("/") > 2]


@pytest.mark.browser
@pytest.mark.parametrize(("path", "scheme"), VIEWS)
def test_axe_finds_no_moderate_or_worse_violation_in_the_archive(
        browser: tuple[Any, str], path: str, scheme: str) -> None:
    chromium, base = browser
    page = chromium.new_page(color_scheme=scheme)
    try:
        page.goto(base + path)
        assert_accessible(page, chromium.axe, f"{path} ({scheme})")
    finally:
        page.close()
