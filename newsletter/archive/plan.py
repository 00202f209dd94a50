"""Page planning: from sent editions, settings and `now` to the list of pages the site holds.

Pure: no database, no files, no clock. Each planned page carries the small, plain context it is
rendered from and a hash of everything its bytes depend on (context, templates, UI strings), so
the writer can skip a page whose inputs did not change without rendering it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError

from newsletter.archive.eventpages import plan_events
from newsletter.archive.inputs import RENDER_VERSION
from newsletter.archive.statementpages import (
    ArchivedStatement,
    plan_statements,
    statement_languages,
)
from newsletter.archive.urls import output_file, relative_href
from newsletter.i18n import LANGUAGES, language_name
from newsletter.links import (
    events_path,
    feed_path,
    index_path,
    issue_path,
    statements_path,
    subscribe_url,
)
from newsletter.localized import Localized, format_day, pick
from newsletter.typography import typeset_text


@dataclass(frozen=True)
class ArchivedEdition:
    """One sent language of one issue as the site plans it (no subscriber data): an `editions`
    row (delivery/editions.EditionRecord, which the archive, below delivery, reads by its
    columns) with its list, the time it went out and the files its page uses."""

    slug: str
    language: str
    list_slug: str
    list_name: str
    subject: str
    title: str
    preheader: str
    issue_date: str
    volume: str
    number: str
    sent_at: datetime
    html_sha: str
    # original reference in the HTML -> content-hashed file name next to the issue page
    assets: Mapping[str, str] = field(default_factory=dict)
    events: tuple[Mapping[str, Any], ...] = ()  # compose.events.Event.to_dict() of each


@dataclass(frozen=True)
class ArchiveConfig:
    """The settings the archive's look and URLs depend on."""

    base_url: str
    app_url: str
    per_page: int
    name: Localized
    titles: Mapping[str, str]
    default_language: str
    organisation: Localized = ""
    feed_entries: int = 20
    dates: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # [languages]

    def title(self, language: str) -> str:
        """Site title in a language: [archive] titles, else the newsletter's name."""
        title = self.titles.get(language) or pick(self.name, language, self.default_language)
        return typeset_text(str(title), language)

    def organisation_in(self, language: str) -> str:
        """The organisation's name in a language."""
        return typeset_text(pick(self.organisation, language, self.default_language), language)


@dataclass(frozen=True)
class PagePlan:
    """One output file: where it goes, how it is rendered, and the hash of its inputs."""

    path: str
    kind: str
    template: str
    language: str
    context: dict[str, Any]
    input_hash: str

    @property
    def file(self) -> str:
        """Path of the file relative to the output folder."""
        return output_file(self.path)


@dataclass(frozen=True)
class AssetPlan:
    """An image or file copied next to an issue page under a content-hashed name."""

    file: str
    slug: str
    language: str
    ref: str


@dataclass(frozen=True)
class SitePlan:
    pages: tuple[PagePlan, ...]
    assets: tuple[AssetPlan, ...]
    urls: Mapping[str, str]


def edition_year(record: ArchivedEdition) -> int:
    """Year shown in the URL: the issue date's year, else the year it was sent."""
    try:
        return date.fromisoformat(record.issue_date[:10]).year
    except ValueError:
        return record.sent_at.year


def edition_date(record: ArchivedEdition) -> date:
    """The date an issue carries: its issue date, else the day it was sent."""
    try:
        return date.fromisoformat(record.issue_date[:10])
    except ValueError:
        return record.sent_at.date()


@lru_cache(maxsize=1024)
def language_name_in(language: str, reader: str) -> str:
    """A language's name in the reader's language ("anglais"), for "Read in ..." labels."""
    try:
        name = Locale.parse(language.replace("-", "_")).get_display_name(reader.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return language
    return name or language




def _order_languages(found: Iterable[str], default: str) -> list[str]:
    def key(lang: str) -> tuple[int, int, str]:
        known = LANGUAGES.index(lang) if lang in LANGUAGES else len(LANGUAGES)
        return (0 if lang == default else 1, known, lang)

    return sorted(set(found), key=key)


def _hash(kind: str, template: str, fingerprints: Mapping[str, str], language: str,
          context: Mapping[str, Any]) -> str:
    # The root and 404 pages speak every language; the others only their own.
    labels = sorted(v for k, v in fingerprints.items() if k.startswith("labels:")) \
        if kind in ("root", "not_found") else fingerprints.get(f"labels:{language}", "")
    parts = [RENDER_VERSION, kind, template, fingerprints.get(template, ""), labels, context]
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class _Planner:
    def __init__(self, editions: Sequence[ArchivedEdition], config: ArchiveConfig, now: datetime,
                 fingerprints: Mapping[str, str], pinned: Mapping[str, str],
                 with_statements: set[str]) -> None:
        self.config = config
        self.with_statements = with_statements
        self.fingerprints = fingerprints
        visible = [e for e in editions if e.sent_at <= now]
        self.paths: dict[tuple[str, str], str] = {}
        for e in visible:
            key = f"{e.slug}|{e.language}"
            self.paths[(e.slug, e.language)] = pinned.get(key) or issue_path(
                e.language, edition_year(e), e.slug
            )
        self.by_language: dict[str, list[ArchivedEdition]] = {}
        self.by_slug: dict[str, list[ArchivedEdition]] = {}
        for e in visible:
            self.by_language.setdefault(e.language, []).append(e)
            self.by_slug.setdefault(e.slug, []).append(e)
        for items in self.by_language.values():
            items.sort(key=lambda e: (edition_date(e), e.sent_at, e.slug), reverse=True)
        self.languages = _order_languages(self.by_language, config.default_language)
        self.with_events = {e.language for e in visible if e.events}
        self.lists = {
            lang: sorted({(e.list_slug, e.list_name) for e in items})
            for lang, items in self.by_language.items()
        }
        for items in self.by_slug.values():
            order = {lang: i for i, lang in enumerate(self.languages)}
            items.sort(key=lambda e: order[e.language])
        self.pages: list[PagePlan] = []

    def page(self, path: str, kind: str, template: str, language: str,
             context: dict[str, Any]) -> None:
        digest = _hash(kind, template, self.fingerprints, language, context)
        self.pages.append(PagePlan(path, kind, template, language, context, digest))

    def common(self, here: str, language: str) -> dict[str, Any]:
        base = self.config.base_url
        lists = self.lists.get(language, [])
        return {
            "lang": language,
            "site_title": self.config.title(language),
            "organisation": self.config.organisation_in(language),
            "canonical": base + here,
            "root_href": relative_href(here, "/"),
            "home_href": relative_href(here, index_path(language)),
            "feed_href": relative_href(here, feed_path(language)),
            "feed_url": base + feed_path(language),
            "subscribe": [self.subscribe(slug, name) for slug, name in lists],
            "events_href": (relative_href(here, events_path(language))
                            if language in self.with_events else ""),
            "statements_href": (relative_href(here, statements_path(language))
                                if language in self.with_statements else ""),
        }

    def subscribe(self, list_slug: str, list_name: str) -> dict[str, str]:
        return {"name": list_name, "href": subscribe_url(self.config.app_url, list_slug)}

    def plan_root(self) -> None:
        here = "/"
        language = self.config.default_language
        context = self.common(here, language)
        # One link per list, named in the root page's language when an edition has it.
        every = {e.list_slug: e.list_name for lang in reversed(self.languages)
                 for e in self.by_language[lang]}
        context["subscribe"] = [self.subscribe(slug, name) for slug, name in sorted(every.items())]
        context["languages"] = [
            {"lang": lang, "name": language_name(lang),
             "href": relative_href(here, index_path(lang)), "title": self.config.title(lang)}
            for lang in self.languages
        ]
        context.update(alternates=[], x_default="", home_href="./", feed_href="", feed_url="")
        self.page(here, "root", "root.html", language, context)

    def plan_not_found(self) -> None:
        """/404.html, for static hosts: shown at any depth, so every link is absolute."""
        here = "/404.html"
        base = self.config.base_url
        language = self.config.default_language
        context = self.common(here, language)
        context.update(
            canonical="", alternates=[], x_default="", root_href=base + "/",
            home_href=base + index_path(language), feed_href="", feed_url="",
            languages=[{"lang": lang, "name": language_name(lang),
                        "href": base + index_path(lang), "title": self.config.title(lang)}
                       for lang in self.languages],
        )
        self.page(here, "not_found", "404.html", language, context)

    def item(self, e: ArchivedEdition, here: str) -> dict[str, Any]:
        day = edition_date(e)
        return {
            "title": e.title or e.subject,
            "preheader": e.preheader,
            "volume": e.volume,
            "number": e.number,
            "date_iso": day.isoformat(),
            "date": format_day(day, e.language, self.config.dates),
            "href": relative_href(here, self.paths[(e.slug, e.language)]),
        }

    def switcher(self, here: str, targets: Mapping[str, str],
                 reader: str) -> list[dict[str, Any]]:
        return [
            {"lang": lang, "name": language_name(lang), "href": relative_href(here, path),
             "label": language_name_in(lang, reader),
             "url": self.config.base_url + path, "current": path == here}
            for lang, path in targets.items()
        ]

    def plan_indexes(self, language: str) -> None:
        items = self.by_language[language]
        per_page = max(1, self.config.per_page)
        total = max(1, math.ceil(len(items) / per_page))
        for number in range(1, total + 1):
            here = index_path(language, number)
            context = self.common(here, language)
            chunk = items[(number - 1) * per_page : number * per_page]
            context["items"] = [self.item(e, here) for e in chunk]
            context["page"] = number
            context["pages"] = total
            context["newer_href"] = (
                relative_href(here, index_path(language, number - 1)) if number > 1 else ""
            )
            context["older_href"] = (
                relative_href(here, index_path(language, number + 1)) if number < total else ""
            )
            targets = {lang: index_path(lang) for lang in self.languages}
            targets[language] = here
            context["switcher"] = self.switcher(here, targets, language)
            context["alternates"] = context["switcher"] if number == 1 else []
            # No language preferred: the root page, which lets the reader choose.
            context["x_default"] = self.config.base_url + "/" if number == 1 else ""
            self.page(here, "index", "index.html", language, context)

    def plan_issue(self, e: ArchivedEdition) -> None:
        here = self.paths[(e.slug, e.language)]
        context = self.common(here, e.language)
        context.update(self.item(e, here))
        context["subject"] = e.subject
        context["slug"] = e.slug
        context["html_sha"] = e.html_sha
        context["assets"] = dict(e.assets)
        context["sent_at"] = e.sent_at.isoformat()
        context["subscribe"] = [self.subscribe(e.list_slug, e.list_name)]
        targets = {o.language: self.paths[(o.slug, o.language)] for o in self.by_slug[e.slug]}
        context["alternates"] = (
            self.switcher(here, targets, e.language) if len(targets) > 1 else []
        )
        context["switcher"] = context["alternates"]
        default = self.config.default_language
        fallback = targets.get(default) or next(iter(targets.values()))
        context["x_default"] = self.config.base_url + fallback if len(targets) > 1 else ""
        self.page(here, "issue", "issue.html", e.language, context)

    def plan_feed(self, language: str) -> None:
        here = feed_path(language)
        entries = []
        for e in self.by_language[language][: max(1, self.config.feed_entries)]:
            path = self.paths[(e.slug, e.language)]
            entries.append({
                "slug": e.slug, "title": e.title or e.subject, "preheader": e.preheader,
                "url": self.config.base_url + path, "sent_at": e.sent_at.isoformat(),
                "html_sha": e.html_sha, "assets": dict(e.assets),
            })
        context = {
            "lang": language, "title": self.config.title(language),
            "author": (self.config.organisation_in(language)
                       or pick(self.config.name, language, self.config.default_language)),
            "url": self.config.base_url + index_path(language),
            "self_url": self.config.base_url + here, "entries": entries,
        }
        self.page(here, "feed", "", language, context)

    def plan_sitemap(self, html_pages: list[PagePlan]) -> None:
        urls = [
            {"loc": self.config.base_url + p.path,
             "lastmod": p.context.get("sent_at", "")[:10],
             "alternates": [{"lang": a["lang"], "url": a["url"]} for a in p.context["alternates"]]}
            for p in html_pages
        ]
        self.page("/sitemap.xml", "sitemap", "", "", {"urls": urls})


def plan_site(
    editions: Sequence[ArchivedEdition],
    config: ArchiveConfig,
    now: datetime,
    fingerprints: Mapping[str, str],
    pinned: Mapping[str, str] | None = None,
    statements: Sequence[ArchivedStatement] = (),
) -> SitePlan:
    """Decide every page and asset of the site, each with the hash of what it depends on."""
    planner = _Planner(editions, config, now, fingerprints, pinned or {},
                       statement_languages(list(statements)))
    planner.plan_root()
    for language in planner.languages:
        planner.plan_indexes(language)
        for e in planner.by_language[language]:
            planner.plan_issue(e)
    html_pages = list(planner.pages)
    planner.plan_not_found()  # not in the sitemap
    for language in planner.languages:
        planner.plan_feed(language)
        plan_events(planner, language, now)
    plan_statements(planner, list(statements), now)
    html_pages += [p for p in planner.pages if p.kind in ("events", "statement", "statements")]
    planner.plan_sitemap(html_pages)
    assets = []
    for (slug, language), path in planner.paths.items():
        record = next(e for e in planner.by_slug[slug] if e.language == language)
        for ref, name in sorted(record.assets.items()):
            assets.append(AssetPlan(output_file(path + name), slug, language, ref))
    urls = {f"{slug}|{lang}": path for (slug, lang), path in planner.paths.items()}
    return SitePlan(tuple(planner.pages), tuple(assets), urls)
