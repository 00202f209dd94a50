"""The archive's statements in the plan: a page per statement and language (the text, the count,
the approved and listed organisations grouped by country, "closed" once its closing day is
over, the other languages), and a statements index per language. Both are in the sitemap.

Pure like plan.py: the statements come as plain data (`ArchivedStatement`, loaded by
archive/statements.py), so a page is rebuilt only when its text or its signatories change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from newsletter.archive.urls import relative_href
from newsletter.links import sign_url, statement_path, statements_path

if TYPE_CHECKING:
    from newsletter.archive.plan import _Planner


@dataclass(frozen=True)
class ArchivedStatement:
    """One statement as the site shows it: no contact, only organisations and countries."""

    slug: str
    closes_at: datetime
    texts: Mapping[str, tuple[str, str]]  # language -> (title, sanitized HTML)
    count: int  # organisations whose signatures are approved, listed or not
    # language -> (country name in that language, organisations), sorted by country
    groups: Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]]


def statement_languages(statements: list[ArchivedStatement]) -> set[str]:
    """The languages that get a statements index."""
    return {lang for s in statements for lang in s.texts}


def _page(planner: _Planner, statement: ArchivedStatement, language: str,
          now: datetime) -> None:
    here = statement_path(language, statement.slug)
    context = planner.common(here, language)
    title, html = statement.texts[language]
    closed = now >= statement.closes_at
    targets = {lang: statement_path(lang, statement.slug) for lang in statement.texts}
    context["switcher"] = planner.switcher(here, targets, language)
    context["alternates"] = context["switcher"] if len(targets) > 1 else []
    context["x_default"] = ""
    context.update(
        title=title, html=html, count=statement.count, closed=closed,
        groups=[[country, list(names)] for country, names in statement.groups[language]],
        index_href=relative_href(here, statements_path(language)),
        sign_url="" if closed else
        f"{sign_url(planner.config.app_url, statement.slug)}?lang={language}",
    )
    planner.page(here, "statement", "statement.html", language, context)


def _index(planner: _Planner, statements: list[ArchivedStatement], language: str,
           now: datetime) -> None:
    here = statements_path(language)
    context = planner.common(here, language)
    context["items"] = [
        {"title": s.texts[language][0], "count": s.count, "closed": now >= s.closes_at,
         "href": relative_href(here, statement_path(language, s.slug))}
        for s in statements if language in s.texts]
    targets = {lang: statements_path(lang) for lang in sorted(statement_languages(statements))}
    context["switcher"] = planner.switcher(here, targets, language)
    context["alternates"] = context["switcher"] if len(targets) > 1 else []
    context["x_default"] = ""
    planner.page(here, "statements", "statements.html", language, context)


def plan_statements(planner: _Planner, statements: list[ArchivedStatement],
                    now: datetime) -> None:
    """Plan every statement page and each language's statements index."""
    ordered = sorted(statements, key=lambda s: (-s.closes_at.timestamp(), s.slug))
    for statement in ordered:
        for language in statement.texts:
            _page(planner, statement, language, now)
    for language in sorted(statement_languages(statements)):
        _index(planner, ordered, language, now)

