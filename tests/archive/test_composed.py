"""The archive of an issue made by the real composer (the example issue shipped in issues/)."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from lxml import html as lxml_html
from sqlalchemy import insert

from newsletter.compose.compiler import compile_issue
from newsletter.compose.source import load_issue
from newsletter.config import load_settings
from newsletter.db.models import Edition, Issue
from newsletter.links import archive_base_url
from tests.archive.conftest import EMAIL_RE, Builder, Newsroom, internal_links, resolves

EXAMPLES = Path(__file__).resolve().parents[2] / "issues"


def test_images_of_a_sent_email_are_served_by_the_archive_page_it_links_to(
    newsroom: Newsroom, build: Builder
) -> None:
    example = next(p for p in sorted(EXAMPLES.iterdir()) if (p / "en.md").exists())
    shutil.copytree(example, newsroom.workspace / "issues" / example.name)
    settings = load_settings(newsroom.workspace)
    source = load_issue(newsroom.workspace, example.name)
    list_id = newsroom.add_list()
    sent = datetime(2026, 11, 20, 8, tzinfo=UTC)
    emails = {}
    with newsroom.engine.begin() as conn:
        issue_id = conn.execute(insert(Issue).values(
            slug=source.slug, list_id=list_id, status="sent", sent_at=sent, data={},
        ).returning(Issue.id)).scalar_one()
        for language in sorted(source.editions):
            compiled = compile_issue(source, language, settings)
            emails[language] = compiled.html_shell
            conn.execute(insert(Edition).values(
                issue_id=issue_id, language=language, subject=compiled.subject,
                title=compiled.title, preheader=compiled.preheader, issue_date=compiled.date,
                volume=compiled.volume, number=compiled.number, web_html=compiled.web_html,
                text="", content_hash=compiled.content_hash, sent_at=sent, data={},
                compiled=compiled.to_json(),  # as the send stores it: the events' calendars
            ))
    report = build()
    assert report.warnings == []
    base = archive_base_url(settings)
    for language, email in emails.items():
        pointed = re.findall(rf'src="{re.escape(base)}(/[^"]+)"', email)
        assert pointed, f"the {language} example has an image beside it"
        assert all(resolves(build.out, path) for path in pointed), pointed
    for page in build.out.rglob("*.html"):
        assert all(resolves(build.out, path) for _, path in internal_links(build.out, page))
        text = page.read_text()
        assert not EMAIL_RE.search(text)
        doc = lxml_html.fromstring(text)
        assert len(doc.findall(".//h1")) == 1 and len(doc.findall(".//main")) == 1
