"""Mailing lists: create, read, describe."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Engine, Table, func, insert, select

from newsletter.db.models import MailingList, Subscription
from newsletter.errors import NotFoundError, ValidationError

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
    name: str,
    languages: list[str],
    default_language: str,
    double_opt_in: bool = True,
    public: bool = True,
    description: str = "",
) -> ListInfo:
    """Create a list; its slug must be new and its default language one it offers."""
    if not SLUG.fullmatch(slug):
        raise ValidationError(
            f"list slug {slug!r} must be lowercase letters, digits and dashes (max 63)"
        )
    if not name.strip():
        raise ValidationError("a list needs a --name")
    default_language = default_language.lower()
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
                name=name.strip(),
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
        out.append(item)
    return out


def sync_lists(engine: Engine, path) -> list[str]:
    """Create the lists defined in lists.toml that do not exist yet; returns their slugs."""
    created = []
    existing = {lst.slug for lst in all_lists(engine)}
    for item in read_list_definitions(path):
        if item["slug"] in existing:
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
