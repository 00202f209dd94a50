"""Publish one issue's web version and images before it is mailed.

The email's "view in browser" link and its images point at the issue's archive page, so they
must answer before the first message goes out. The pages are planned with the rest of the site
(same URL, same language switcher as the full build will make), but only this issue's pages
and files are written, and the manifest is not touched: the issue stays out of the indexes,
feeds and sitemap until `newsletter archive build` runs after the send (which adopts the files).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from newsletter.archive.assets import scan_assets
from newsletter.archive.calendars import stored_events
from newsletter.archive.eventpages import edition_events
from newsletter.archive.plan import ArchivedEdition, plan_site
from newsletter.archive.render import PageRenderer
from newsletter.archive.site import (
    _Site,
    _Source,
    archive_config,
    load_editions,
    write_calendars,
)
from newsletter.archive.writer import SiteWriter
from newsletter.config import Settings


@dataclass(frozen=True)
class PublishedIssue:
    """What publishing one issue wrote: its pages' and files' paths, relative to the site."""

    out: str
    pages: list[str]
    assets: list[str]
    written: int
    warnings: list[str]
    calendars: list[str] = field(default_factory=list)


def _record(slug: str, list_slug: str, list_name: str, edition: Any, now: datetime,
            source_dir: Path) -> tuple[ArchivedEdition, _Source]:
    web_html = edition.web_html or ""
    scan = scan_assets(web_html, source_dir)
    events = stored_events(getattr(edition, "compiled", None))
    record = ArchivedEdition(
        slug=slug, language=edition.language, list_slug=list_slug, list_name=list_name,
        subject=edition.subject or "", title=edition.title or "",
        preheader=edition.preheader or "", issue_date=str(edition.issue_date or ""),
        volume=str(edition.volume or ""), number=str(edition.number or ""), sent_at=now,
        html_sha=hashlib.sha256(web_html.encode()).hexdigest(), assets=scan.names,
        events=edition_events(events),
    )
    return record, _Source(web_html, scan, events)


def publish_issue(
    settings: Settings, engine: Engine, slug: str, list_slug: str, list_name: str,
    editions: Iterable[Any], *, out: Path | None = None, now: datetime | None = None,
) -> PublishedIssue:
    """Write the issue's page in each language and its images, unlisted, into the site folder.

    `editions` are the send's delivery.editions.EditionRecord rows (language, subject, title,
    preheader, issue_date, volume, number, web_html).
    """
    out = out or settings.path(settings.archive.out)
    now = now or datetime.now(UTC)
    records, sources, _ = load_editions(settings, engine)
    records = [r for r in records if r.slug != slug]
    warnings, ours = [], []
    for edition in editions:
        record, source = _record(slug, list_slug, list_name, edition, now,
                                 settings.workspace / "issues" / slug)
        warnings += [f"{slug} ({record.language}): missing file {ref!r}"
                     for ref in source.scan.missing]
        records.append(record)
        ours.append(record)
        sources[(slug, record.language)] = source
    renderer = PageRenderer(settings.workspace)
    writer = SiteWriter(out)
    plan = plan_site(records, archive_config(settings), now, renderer.fingerprints,
                     writer.previous["urls"])
    site = _Site(settings, sources, renderer)
    pages = [p for p in plan.pages if p.kind == "issue" and p.context.get("slug") == slug]
    for page in pages:
        writer.write(page.file, site.render(page), page.input_hash)
    assets = [a for a in plan.assets if a.slug == slug]
    for asset in assets:
        found = next(a for a in sources[(slug, asset.language)].scan.assets if a.ref == asset.ref)
        writer.write(asset.file, found.source.read_bytes(), found.name)
    calendars = write_calendars(settings, writer, ours, sources)
    # No writer.finish(): the manifest, and so the indexes' view of the site, stay as they were.
    return PublishedIssue(out=str(out), pages=[p.file for p in pages],
                          assets=[a.file for a in assets], written=writer.written,
                          warnings=warnings, calendars=calendars)
