"""The full build: read sent editions, plan the site, render what changed, write it.

The edges are here (database, files, clock); the decisions are in plan.py. builder.py comes
here only when the inputs changed since the last build (inputs.py).
"""

from __future__ import annotations

import hashlib
import html as htmllib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup
from sqlalchemy import Engine, select

from newsletter.archive.assets import Asset, AssetScan, legacy_name, rewrite_refs, scan_assets
from newsletter.archive.builder import BuildReport
from newsletter.archive.calendars import calendar_files, stored_events
from newsletter.archive.eventpages import edition_events, render_calendar
from newsletter.archive.feeds import render_feed
from newsletter.archive.inputs import Inputs, watch
from newsletter.archive.plan import (
    ArchiveConfig,
    ArchivedEdition,
    PagePlan,
    SitePlan,
    plan_site,
)
from newsletter.archive.render import DOMAIN, PageRenderer
from newsletter.archive.sitemap import render_sitemap
from newsletter.archive.statementpages import ArchivedStatement
from newsletter.archive.webversion import (
    WebVersion,
    feed_content,
    scrub_links,
    split_web_version,
)
from newsletter.archive.writer import OutputError, SiteWriter, clean_output, read_manifest
from newsletter.audience.lists import list_text
from newsletter.compose.events import Event
from newsletter.config import Settings
from newsletter.db.models import Edition, Issue, MailingList
from newsletter.i18n import gettext
from newsletter.images import ImageError, cache_for
from newsletter.links import archive_base_url, manage_url

# An issue shows in the archive once a language of it went out to subscribers.
PUBLISHED_STATUSES = ("sending", "paused", "sent")


@dataclass
class _Source:
    """An edition's heavy parts, kept out of the plan: its HTML, its files and its events."""

    web_html: str
    scan: AssetScan
    events: list[Event] = field(default_factory=list)


def archive_config(settings: Settings) -> ArchiveConfig:
    """The archive-relevant settings as plain data."""
    news, archive = settings.newsletter, settings.archive
    return ArchiveConfig(
        base_url=archive_base_url(settings),
        app_url=news.base_url.rstrip("/"),
        per_page=archive.per_page,
        name=settings.tables.get(("newsletter", "name")) or news.name,
        titles={str(k): str(v) for k, v in (archive.titles or {}).items()},
        default_language=news.default_language,
        organisation=settings.tables.get(("newsletter", "organisation")) or news.organisation,
        dates=settings.languages,
        feed_entries=max(20, archive.per_page),
    )


def _source_dir(settings: Settings, slug: str, data: Mapping[str, Any]) -> Path:
    given = data.get("source_dir") if isinstance(data, Mapping) else None
    return settings.path(str(given)) if given else settings.workspace / "issues" / slug


def load_editions(
    settings: Settings, engine: Engine
) -> tuple[list[ArchivedEdition], dict[tuple[str, str], _Source], list[str]]:
    """Every edition that went out, with its HTML and files; no subscriber data is read."""
    query = (
        select(
            Issue.slug, Edition.language, MailingList.slug, MailingList.name, Edition.subject,
            Edition.title, Edition.preheader, Edition.issue_date, Edition.volume, Edition.number,
            Edition.sent_at, Edition.web_html, Edition.data, MailingList.names,
            MailingList.default_language, Edition.compiled,
        )
        .join(Issue, Issue.id == Edition.issue_id)
        .join(MailingList, MailingList.id == Issue.list_id)
        .where(Edition.sent_at.is_not(None))
        .where(Issue.status.in_(PUBLISHED_STATUSES))
        .where(MailingList.public.is_(True))
        .order_by(Issue.slug, Edition.language)
    )
    records, sources, warnings = [], {}, []
    with engine.connect() as conn:
        for row in conn.execute(query):
            (slug, language, list_slug, list_name, subject, title, preheader, issue_date,
             volume, number, sent_at, web_html, data, list_names, list_language,
             compiled) = row
            list_name = list_text(list_names, list_name, language, list_language)
            web_html = web_html or ""
            scan = scan_assets(web_html, _source_dir(settings, slug, data or {}))
            warnings += [f"{slug} ({language}): missing file {ref!r}" for ref in scan.missing]
            if isinstance(sent_at, datetime) and sent_at.tzinfo is None:
                sent_at = sent_at.replace(tzinfo=UTC)
            records.append(ArchivedEdition(
                slug=slug, language=language, list_slug=list_slug, list_name=list_name,
                subject=subject or "", title=title or "", preheader=preheader or "",
                issue_date=issue_date or "", volume=volume or "", number=number or "",
                sent_at=sent_at, html_sha=hashlib.sha256(web_html.encode()).hexdigest(),
                assets=scan.names, events=edition_events(events := stored_events(compiled)),
            ))
            sources[(slug, language)] = _Source(web_html, scan, events)
    return records, sources, warnings


class _Site:
    """Renders the planned pages that are out of date, using the editions' sources."""

    def __init__(self, settings: Settings, sources: dict[tuple[str, str], _Source],
                 renderer: PageRenderer) -> None:
        self.sources = sources
        self.renderer = renderer
        self.manage = manage_url(settings.newsletter.base_url)

    def body(self, slug: str, language: str, assets: Mapping[str, str],
             prefix: str = "") -> tuple[WebVersion, str]:
        parts = split_web_version(self.sources[(slug, language)].web_html)
        body = rewrite_refs(scrub_links(parts.body, self.manage), assets, prefix)
        return parts, body

    def render(self, page: PagePlan) -> bytes:
        if page.kind == "issue":
            ctx = page.context
            parts, body = self.body(ctx["slug"], page.language, ctx["assets"])
            title = str(ctx["title"])
            return self.renderer.render(
                page, email_styles=Markup(parts.styles), email_body=Markup(body),
                email_style=Markup(parts.body_style.replace('"', "&quot;")),
                email_has_h1="<h1" in body.lower(),
                # A masthead inside the email already shows title and date: say them once.
                email_shows_title=title in body or htmllib.escape(title, quote=False) in body,
            )
        if page.kind == "feed":
            def content(entry: Mapping[str, Any]) -> str:
                base = entry["url"]
                body = self.body(entry["slug"], page.language, entry["assets"], base)[1]
                return feed_content(body)
            return render_feed(page, content)
        if page.kind == "calendar":
            return render_calendar(page)
        if page.kind == "sitemap":
            return render_sitemap(page)
        if page.kind in ("root", "not_found"):
            past = {lang["lang"]: gettext(lang["lang"], DOMAIN, "Past issues")
                    for lang in page.context["languages"]}
            return self.renderer.render(page, past_issues=past)
        return self.renderer.render(page)


def _legacy_file(file: str, source: Asset) -> list[str]:
    """The picture's pre-processing name beside it, so mails sent before still show it."""
    old = legacy_name(source.ref, source.source.read_bytes())
    return [file.rsplit("/", 1)[0] + "/" + old] if old and "/" in file else []


def write_calendars(settings: Settings, writer: SiteWriter, records: list[ArchivedEdition],
                    sources: Mapping[tuple[str, str], _Source]) -> list[str]:
    """Write the calendar file of every event of these editions; their paths."""
    base, written = archive_base_url(settings), []
    for record in records:
        events = sources[(record.slug, record.language)].events
        for item in calendar_files(base, record.issue_date, events):
            if writer.is_current(item.file, item.input_hash):
                writer.keep(item.file)
            else:
                writer.write(item.file, item.data(), item.input_hash)
            written.append(item.file)
    return written


def _refuse_a_partial_site(settings: Settings, missing: list[str],
                           statements: list[ArchivedStatement], files: Mapping[str, Any]) -> None:
    """OutputError when this host lacks files the site needs (the workspace's)."""
    here = settings.workspace.resolve()
    if missing:
        raise OutputError(f"{len(missing)} file(s) of sent issues are not in {here} "
                          f"({missing[0]})")
    if not statements and any("/statements/" in f"/{file}" for file in files):
        raise OutputError(f"the site has statements' pages and {here} has no statements/")


def _write(settings: Settings, writer: SiteWriter, plan: SitePlan, site: _Site,
           records: list[ArchivedEdition], sources: Mapping[tuple[str, str], _Source],
           warnings: list[str]) -> None:
    """Write every planned page, picture and calendar file whose inputs changed."""
    for page in plan.pages:
        if writer.is_current(page.file, page.input_hash):
            writer.keep(page.file)
        else:
            writer.write(page.file, site.render(page), page.input_hash)
    for asset in plan.assets:
        source = next(a for a in sources[(asset.slug, asset.language)].scan.assets
                      if a.ref == asset.ref)
        files = [asset.file, *_legacy_file(asset.file, source)]
        if all(writer.is_current(file, source.name) for file in files):
            for file in files:
                writer.keep(file)
            continue
        try:  # pictures are published processed, never as the editor's original
            content = source.content(cache_for(settings.workspace))
        except ImageError as exc:
            warnings.append(f"{asset.slug} ({asset.language}): not published: {exc}")
            continue
        for file in files:
            writer.write(file, content, source.name)
    write_calendars(settings, writer, records, sources)


def _until(records: list[ArchivedEdition], sources: Mapping[tuple[str, str], _Source],
           statements: list[ArchivedStatement], now: datetime) -> datetime | None:
    """The first moment after `now` at which the clock alone changes a page: an issue sent
    for later shows, an event is over, a statement closes."""
    moments = [record.sent_at for record in records]
    moments += [event.over_at for source in sources.values() for event in source.events]
    moments += [statement.closes_at for statement in statements]
    return min((moment for moment in moments if moment > now), default=None)


def _record(settings: Settings, inputs: Inputs, now: datetime, until: datetime | None,
            watched: Iterable[Path], report: dict[str, Any]) -> dict[str, Any]:
    """What inputs.py needs to tell that a later build has nothing to do."""
    return {"digest": inputs.digest, "since": now.isoformat(),
            "until": until.isoformat() if until else None,
            "files": watch(settings.workspace.resolve(), watched), "report": report}


def build_site(
    *,
    settings: Settings,
    engine: Engine,
    out: Path,
    inputs: Inputs,
    now: datetime,
    clean: bool = False,
    whole: bool = False,
) -> BuildReport:
    """Plan the whole site and write what changed (builder.build_archive's full build)."""
    started = time.perf_counter()
    previous = read_manifest(out)
    if clean:
        clean_output(out)
    renderer = PageRenderer(settings.workspace)
    records, sources, warnings = load_editions(settings, engine)
    warnings += inputs.warnings
    statements = inputs.statements
    if whole:
        _refuse_a_partial_site(settings, warnings, statements, previous["files"])
    plan = plan_site(records, archive_config(settings), now, renderer.fingerprints,
                     previous["urls"], statements)
    site = _Site(settings, sources, renderer)
    writer = SiteWriter(out)
    try:
        _write(settings, writer, plan, site, records, sources, warnings)
    except BaseException:
        writer.abandon()
        raise
    languages = list(dict.fromkeys(p.language for p in plan.pages if p.kind == "index"))
    # Whether it warned, not the warnings: the record lies in the public site.
    summary = {"languages": languages, "editions": len(plan.urls), "pages": len(plan.pages),
               "assets": len(plan.assets), "warned": bool(warnings)}
    watched = [path for source in sources.values() for path in source.scan.looked_at]
    counts = writer.finish(dict(plan.urls), _record(
        settings, inputs, now, _until(records, sources, statements, now), watched, summary))
    return BuildReport(
        out=str(out), languages=languages, editions=len(plan.urls), pages=len(plan.pages),
        assets=len(plan.assets), written=counts.written, unchanged=counts.unchanged,
        removed=counts.removed, seconds=round(time.perf_counter() - started, 3),
        warnings=warnings, changed=sorted(writer.written_files),
    )
