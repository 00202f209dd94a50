"""The archive's statement pages: one per statement and language, with the text, the count
of organisations that signed, the approved signatories who agreed to be listed, grouped by
country, and "closed" once the closing date has passed. Only organisation names and countries
are read (statements/moderation.signatories): no contact name or address reaches the site.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from markupsafe import Markup
from sqlalchemy import Engine

from newsletter.archive.render import DOMAIN, PageRenderer
from newsletter.archive.urls import output_file, relative_href
from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.i18n import LANGUAGES, language_name, translations
from newsletter.links import sign_url, statement_path
from newsletter.statements.countries import country_name
from newsletter.statements.moderation import approved_count, signatories
from newsletter.statements.source import FOLDER, Statement, load_statement

TEMPLATE = "statement.html"


def statements_in(workspace: Path, warnings: list[str]) -> list[Statement]:
    """Every statement of the workspace that loads; a broken one is a warning."""
    found = []
    base = workspace / FOLDER
    for folder in sorted(base.iterdir() if base.is_dir() else []):
        if not folder.is_dir():
            continue
        try:
            found.append(load_statement(workspace, folder.name))
        except (NewsletterError, OSError) as exc:  # one bad statement must not stop the build
            warnings.append(f"statement {folder.name}: not published: {exc}")
    return found


def _groups(engine: Engine, slug: str, language: str) -> list[tuple[str, list[str]]]:
    """(country name, organisations) sorted by the country's name in this language."""
    grouped: dict[str, list[str]] = {}
    for signatory in signatories(engine, slug):
        grouped.setdefault(country_name(signatory.country, language), []).append(
            signatory.organisation)
    return sorted(grouped.items(), key=lambda item: item[0].casefold())


def render_page(renderer: PageRenderer, settings: Settings, engine: Engine,
                statement: Statement, language: str, now: datetime) -> bytes:
    """One statement page in one language."""
    text = statement.text(language)
    path = statement_path(language, statement.slug)
    others = [{"lang": lang, "name": language_name(lang),
               "href": relative_href(path, statement_path(lang, statement.slug))}
              for lang in LANGUAGES if lang != language and lang in statement.texts]
    closed = now >= statement.closes_at
    values = {
        "lang": language, "title": text.title, "html": Markup(text.html),
        "count": approved_count(engine, statement.slug), "closed": closed,
        "groups": _groups(engine, statement.slug, language), "others": others,
        "sign_url": "" if closed else
        f"{sign_url(settings.newsletter.base_url, statement.slug)}?lang={language}",
    }
    gettext = translations(language, DOMAIN).gettext
    template = renderer.env.get_template(TEMPLATE)
    return template.render(_=gettext, **values).encode("utf-8")


def statement_pages(settings: Settings, engine: Engine, renderer: PageRenderer, now: datetime,
                    warnings: list[str]) -> Iterator[tuple[str, bytes, str]]:
    """(file, bytes, input hash) of every statement page."""
    for statement in statements_in(settings.workspace, warnings):
        for language in statement.texts:
            data = render_page(renderer, settings, engine, statement, language, now)
            yield (output_file(statement_path(language, statement.slug)), data,
                   hashlib.sha256(data).hexdigest())
