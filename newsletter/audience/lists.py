"""Mailing lists as readers see them: ListInfo, the one lookup by slug, names and descriptions
in a reader's language. Creating and changing lists is audience/listedits.py's; lists.toml is
audience/listsync.py's."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from newsletter.audience.language import ListLanguages
from newsletter.db.tables import LISTS, SUBSCRIPTIONS
from newsletter.errors import NotFoundError
from newsletter.localized import pick
from newsletter.typography import typeset_text

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class ListInfo:
    """A list as plain data."""

    id: int
    slug: str
    name: str
    languages: list[str]
    default_language: str
    opt_in: str
    public: bool
    counts: dict[str, int] = field(default_factory=dict)  # by status; empty when not asked for
    names: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def reading(self) -> ListLanguages:
        """The list's language policy: what it offers, and the language each reader gets."""
        return ListLanguages.of(self)

    def display_name(self, language: str) -> str:
        """The list's name as a reader of `language` sees it."""
        return list_text(self.names, self.name, language, self.default_language)


def _table(value: Any) -> dict[str, str]:
    """A names/descriptions column: a dict, JSON text (raw driver reads), or nothing."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else None
    return dict(value) if isinstance(value, Mapping) else {}


def list_text(table: Any, fallback: str, language: str, default_language: str) -> str:
    """A list's name or description in a language (its table, else the stored text), typeset."""
    return _typeset(pick(_table(table) or fallback, language, default_language), language)


# Names are few and shown on every preferences page: typeset each once.
_typeset = lru_cache(maxsize=1024)(typeset_text)


def localized_list(mlist: Mapping[str, Any], language: str) -> dict[str, Any]:
    """A list row as a reader of `language` sees it: name and description in that language."""
    default = str(mlist.get("default_language") or language)
    return {**mlist,
            "name": list_text(mlist.get("names"), mlist["name"], language, default),
            "description": list_text(mlist.get("descriptions"), mlist.get("description") or "",
                                     language, default)}


def _counts(engine: Engine, list_id: int | None = None) -> dict[int, dict[str, int]]:
    stmt = select(
        SUBSCRIPTIONS.c.list_id, SUBSCRIPTIONS.c.status, func.count()
    ).group_by(SUBSCRIPTIONS.c.list_id, SUBSCRIPTIONS.c.status)
    if list_id is not None:
        stmt = stmt.where(SUBSCRIPTIONS.c.list_id == list_id)
    out: dict[int, dict[str, int]] = {}
    with engine.connect() as conn:
        for lid, status, n in conn.execute(stmt):
            out.setdefault(lid, {})[status] = n
    return out


STATUSES = ("pending", "confirmed", "unsubscribed")


def _info(row, counts: dict[str, int] | None) -> ListInfo:
    full = {} if counts is None else {s: counts.get(s, 0) for s in STATUSES}
    return ListInfo(
        id=row.id,
        slug=row.slug,
        name=row.name,
        languages=list(row.languages),
        default_language=row.default_language,
        opt_in=row.opt_in,
        public=row.public,
        counts=full,
        names=_table(row.names),
        descriptions=_table(row.descriptions),
    )


def list_by_slug(conn: Connection, slug: str) -> ListInfo | None:
    """The one lookup of a list by its slug (without counts), or None."""
    if not 0 < len(slug) <= 64:
        return None
    row = conn.execute(select(LISTS).where(LISTS.c.slug == slug)).first()
    return None if row is None else _info(row, None)


def get_list(engine: Engine, slug: str) -> ListInfo:
    """One list by slug, with subscription counts."""
    with engine.connect() as conn:
        info = list_by_slug(conn, slug)
    if info is None:
        raise NotFoundError(f"no list {slug!r} (see `newsletter lists list`)")
    counts = _counts(engine, info.id).get(info.id, {})
    return replace(info, counts={s: counts.get(s, 0) for s in STATUSES})


def all_lists(engine: Engine) -> list[ListInfo]:
    """Every list, by slug."""
    counts = _counts(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(LISTS).order_by(LISTS.c.slug)).all()
    return [_info(r, counts.get(r.id, {})) for r in rows]

