"""An issue's editions: one row per language in `editions`, written when the issue is enqueued.

Each row holds what the archive shows (subject, web page, text) and the compiled edition as
JSON (`compiled`, see CompiledEdition.to_json): the send workers build every message from it,
so a worker needs no workspace, and an edit to the Markdown after enqueue changes nothing for
the recipients still waiting. The issue is compiled once per language, at enqueue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert, select, update

from newsletter.config import Settings
from newsletter.db.tables import EDITIONS
from newsletter.delivery.errors import SendError
from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.compose import CompiledEdition, IssueSource


@dataclass(frozen=True)
class EditionRecord:
    """One language of an issue as enqueued: an `editions` row."""

    language: str
    subject: str
    title: str
    preheader: str
    issue_date: str
    volume: str
    number: str
    web_html: str
    text: str
    content_hash: str
    compiled: str | None = None  # CompiledEdition.to_json(); None before migration 0006


def edition_record(edition: CompiledEdition) -> EditionRecord:
    """The row for a compiled edition (its text filled for an anonymous reader)."""
    from newsletter.compose.slots import Slots

    try:
        text = edition.fill(Slots(web_url=edition.web_url))[1]
    except Exception:  # the archive copy must never block a send
        text = edition.text_shell
    return EditionRecord(
        language=edition.language, subject=edition.subject, title=edition.title,
        preheader=edition.preheader, issue_date=str(edition.date), volume=str(edition.volume),
        number=str(edition.number), web_html=edition.web_html, text=text,
        content_hash=edition.content_hash, compiled=edition.to_json())


def load_source(settings: Settings, slug: str) -> tuple[IssueSource, dict[str, CompiledEdition]]:
    """The issue's source in the workspace and its compiled editions, one per language file."""
    from newsletter.compose import compile_issue, load_issue

    source = load_issue(settings.workspace, slug)
    return source, {lang: compile_issue(source, lang, settings) for lang in source.languages}


def stored_hashes(conn: Connection, issue_id: int) -> dict[str, str]:
    q = select(EDITIONS.c.language, EDITIONS.c.content_hash).where(EDITIONS.c.issue_id == issue_id)
    return {lang: h for lang, h in conn.execute(q)}


def store_editions(conn: Connection, issue_id: int, editions: Iterable[EditionRecord]) -> None:
    """Insert or refresh the editions rows (sent_at is kept: it records the first send)."""
    existing = stored_hashes(conn, issue_id)
    for e in editions:
        values = {f.name: getattr(e, f.name) for f in fields(EditionRecord)}
        if e.language in existing:
            conn.execute(
                update(EDITIONS)
                .where(EDITIONS.c.issue_id == issue_id, EDITIONS.c.language == e.language)
                .values(values)
            )
        else:
            conn.execute(insert(EDITIONS).values(issue_id=issue_id, data={}, **values))


def stored_editions(conn: Connection, issue_id: int) -> dict[str, EditionRecord]:
    """The issue's rows by language, in the order they were stored."""
    columns = [EDITIONS.c[f.name] for f in fields(EditionRecord)]
    rows = conn.execute(
        select(*columns).where(EDITIONS.c.issue_id == issue_id).order_by(EDITIONS.c.id))
    return {row.language: EditionRecord(*row) for row in rows}


def compiled_editions(
    settings: Settings, slug: str, records: dict[str, EditionRecord], needed: Sequence[str] = (),
) -> dict[str, CompiledEdition]:
    """The compiled edition of each stored language; SendError naming any of `needed` (the
    languages deliveries wait in) that has none."""
    from newsletter.compose import CompiledEdition

    try:
        compiled = {lang: CompiledEdition.from_json(r.compiled)
                    for lang, r in records.items() if r.compiled is not None}
    except (ValueError, KeyError, TypeError) as exc:
        raise SendError(f"issue {slug!r}: a compiled edition in the database cannot be read "
                        f"({exc}); was it stored by a newer version?") from None
    legacy = [lang for lang, r in records.items() if r.compiled is None]
    if legacy:
        # Enqueued before migration 0006, which stored no compiled editions (a migration cannot
        # compile Markdown): compile these from the workspace, as every worker did then.
        compiled |= _compile_legacy(settings, slug, records, legacy)
    missing = sorted(set(needed) - set(compiled))
    if missing:
        raise SendError(f"issue {slug!r} has deliveries queued in {', '.join(missing)} but no "
                        f"compiled edition in that language in the database")
    return compiled


def changed_languages(stored: Mapping[str, EditionRecord],
                      compiled: Mapping[str, CompiledEdition]) -> list[str]:
    """The languages whose compiled text differs from the one stored at enqueue."""
    return sorted(lang for lang, e in compiled.items()
                  if lang in stored and stored[lang].content_hash != e.content_hash)


def refuse_changed(slug: str, stored: Mapping[str, EditionRecord],
                   compiled: Mapping[str, CompiledEdition]) -> None:
    """SendError when the workspace's text is not the one the send started with."""
    changed = changed_languages(stored, compiled)
    if changed:
        raise SendError(f"issue {slug!r} changed since its send started ({', '.join(changed)}): "
                        f"restore it, or pass --force to send the new text to the rest")


def _compile_legacy(settings: Settings, slug: str, records: dict[str, EditionRecord],
                    languages: Sequence[str]) -> dict[str, CompiledEdition]:
    try:
        compiled = load_source(settings, slug)[1]
    except NewsletterError as exc:
        raise SendError(
            f"issue {slug!r} was queued by an older version, which kept no compiled "
            f"{', '.join(languages)} edition in the database, and its source cannot be "
            f"compiled: {exc}") from None
    wanted = {lang: compiled[lang] for lang in languages if lang in compiled}
    refuse_changed(slug, records, wanted)
    return wanted
