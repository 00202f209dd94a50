"""Mailing lists: create, read, describe."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Engine, Table, func, insert, select, update

from newsletter.db.models import MailingList, Subscription
from newsletter.errors import NotFoundError, ValidationError
from newsletter.localized import Localized, check_text, pick
from newsletter.typography import typeset_text

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")

lists_table = cast(Table, MailingList.__table__)
subscriptions_table = cast(Table, Subscription.__table__)


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
    counts: dict[str, int]
    names: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)

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


def _split(value: Localized, default_language: str) -> tuple[str, dict[str, str] | None]:
    """(text in the default language, the table or None) of a name or description."""
    if isinstance(value, str):
        return value.strip(), None
    return pick(value, default_language, default_language).strip(), dict(value)


def parse_languages(text: str) -> list[str]:
    """'en, FR,es' -> ['en', 'fr', 'es'], rejecting anything that is not a language tag."""
    langs = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not langs:
        raise ValidationError("at least one language is required (e.g. en,fr,es)")
    for lang in langs:
        if not LANGUAGE.fullmatch(lang):
            raise ValidationError(f"{lang!r} is not a language code (use e.g. en, fr, es, pt-br)")
    return list(dict.fromkeys(langs))


def add_list(
    engine: Engine,
    *,
    slug: str,
    name: Localized,
    languages: list[str],
    default_language: str,
    double_opt_in: bool = True,
    public: bool = True,
    description: Localized = "",
) -> ListInfo:
    """Create a list; its slug must be new and its default language one it offers.

    The name and description may be tables {language: text}; the default language's text is
    also stored as the plain name and description.
    """
    if not SLUG.fullmatch(slug):
        raise ValidationError(
            f"list slug {slug!r} must be lowercase letters, digits and dashes (max 63)"
        )
    default_language = default_language.lower()
    name, names = _split(name, default_language)
    description, descriptions = _split(description, default_language)
    if not name:
        raise ValidationError("a list needs a --name")
    if default_language not in languages:
        raise ValidationError(
            f"default language {default_language!r} is not among the list's languages "
            f"({', '.join(languages)})"
        )
    with engine.begin() as conn:
        if conn.scalar(select(lists_table.c.id).where(lists_table.c.slug == slug)):
            raise ValidationError(f"a list with slug {slug!r} already exists")
        conn.execute(
            insert(lists_table).values(
                slug=slug,
                name=name,
                names=names,
                descriptions=descriptions,
                languages=languages,
                default_language=default_language,
                opt_in="double" if double_opt_in else "single",
                public=public,
                description=description,
            )
        )
    return get_list(engine, slug)


def _counts(engine: Engine, list_id: int | None = None) -> dict[int, dict[str, int]]:
    stmt = select(
        subscriptions_table.c.list_id, subscriptions_table.c.status, func.count()
    ).group_by(subscriptions_table.c.list_id, subscriptions_table.c.status)
    if list_id is not None:
        stmt = stmt.where(subscriptions_table.c.list_id == list_id)
    out: dict[int, dict[str, int]] = {}
    with engine.connect() as conn:
        for lid, status, n in conn.execute(stmt):
            out.setdefault(lid, {})[status] = n
    return out


def _info(row, counts: dict[str, int]) -> ListInfo:
    full = {s: counts.get(s, 0) for s in ("pending", "confirmed", "unsubscribed")}
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


def get_list(engine: Engine, slug: str) -> ListInfo:
    """One list by slug, with subscription counts."""
    with engine.connect() as conn:
        row = conn.execute(select(lists_table).where(lists_table.c.slug == slug)).first()
    if row is None:
        raise NotFoundError(f"no list {slug!r} (see `newsletter lists list`)")
    return _info(row, _counts(engine, row.id).get(row.id, {}))


def all_lists(engine: Engine) -> list[ListInfo]:
    """Every list, by slug."""
    counts = _counts(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(lists_table).order_by(lists_table.c.slug)).all()
    return [_info(r, counts.get(r.id, {})) for r in rows]


def read_list_definitions(path) -> list[dict]:
    """Read subscribers/lists.toml: one [[list]] table per list."""
    import tomllib

    from newsletter.config import ConfigError

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    out = []
    for i, item in enumerate(data.get("list", []), start=1):
        missing = [k for k in ("slug", "name", "languages") if k not in item]
        if missing:
            raise ConfigError(f"{path}: list #{i}: missing {', '.join(missing)}")
        for key in ("name", "description"):
            try:
                if key in item:
                    item[key] = check_text(item[key])
            except ValueError as exc:
                raise ConfigError(f"{path}: list #{i}: {key}: {exc}") from None
        out.append(item)
    return out


def sync_lists(engine: Engine, path) -> list[str]:
    """Create the lists defined in lists.toml that do not exist yet; returns their slugs.

    Lists that exist take the file's per-language names and descriptions.
    """
    created = []
    existing = {lst.slug: lst for lst in all_lists(engine)}
    for item in read_list_definitions(path):
        if item["slug"] in existing:
            _retitle(engine, existing[item["slug"]], item)
            continue
        langs = item["languages"]
        langs = parse_languages(langs if isinstance(langs, str) else ",".join(langs))
        add_list(
            engine,
            slug=item["slug"],
            name=item["name"],
            languages=langs,
            default_language=item.get("default_language", langs[0]),
            double_opt_in=item.get("opt_in", "double") == "double",
            public=item.get("public", True),
            description=item.get("description", ""),
        )
        created.append(item["slug"])
    return created


def _retitle(engine: Engine, mlist: ListInfo, item: Mapping[str, Any]) -> None:
    """Store a lists.toml entry's names and descriptions on an existing list."""
    values: dict[str, Any] = {}
    for key, tables in (("name", "names"), ("description", "descriptions")):
        if key in item:
            text, table = _split(item[key], mlist.default_language)
            if text or key == "description":
                values.update({key: text, tables: table})
    if values:
        with engine.begin() as conn:
            conn.execute(update(lists_table).where(lists_table.c.id == mlist.id).values(**values))
