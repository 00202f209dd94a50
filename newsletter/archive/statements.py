"""The archive's statements, read for the plan (archive/statementpages.py): each statement's
texts from the workspace, and from the database only what a public page may show, the count and
the approved signatories who agreed to be listed (statements/moderation.signatories). No
contact name or address is read here, so none can reach the site.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from newsletter.archive.statementpages import ArchivedStatement
from newsletter.errors import NewsletterError
from newsletter.statements.countries import country_name
from newsletter.statements.moderation import Signatory, approved_count, signatories
from newsletter.statements.source import FOLDER, Statement, load_statement


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


def _groups(found: list[Signatory], language: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(country name, organisations) sorted by the country's name in this language."""
    grouped: dict[str, list[str]] = {}
    for signatory in found:
        grouped.setdefault(country_name(signatory.country, language), []).append(
            signatory.organisation)
    return tuple((country, tuple(names)) for country, names
                 in sorted(grouped.items(), key=lambda item: item[0].casefold()))


def load_statements(workspace: Path, engine: Engine,
                    warnings: list[str]) -> list[ArchivedStatement]:
    """The workspace's statements as the site plans them."""
    archived = []
    for statement in statements_in(workspace, warnings):
        found = signatories(engine, statement.slug)
        archived.append(ArchivedStatement(
            slug=statement.slug, closes_at=statement.closes_at,
            texts={lang: (text.title, text.html) for lang, text in statement.texts.items()},
            count=approved_count(engine, statement.slug),
            groups={lang: _groups(found, lang) for lang in statement.texts}))
    return archived
