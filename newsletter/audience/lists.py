"""Mailing lists: create, read, describe, change, rename, delete, sync from lists.toml."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from newsletter.audience.language import ListLanguages, parse_languages
from newsletter.db.tables import DELIVERIES, ISSUES, LISTS, SUBSCRIBERS, SUBSCRIPTIONS
from newsletter.errors import NotFoundError, ValidationError
from newsletter.localized import Localized, check_text, pick
from newsletter.typography import typeset_text

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

# An issue in these states still has mails to send to the list's subscribers.
SENDING = ("sending", "paused")


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


def _split(value: Localized, default_language: str) -> tuple[str, dict[str, str] | None]:
    """(text in the default language, the table or None) of a name or description."""
    if isinstance(value, str):
        return value.strip(), None
    return pick(value, default_language, default_language).strip(), dict(value)


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
    name, default_language = check_new_list(slug, name, languages, default_language)
    name, names = _split(name, default_language)
    description, descriptions = _split(description, default_language)
    with engine.begin() as conn:
        if conn.scalar(select(LISTS.c.id).where(LISTS.c.slug == slug)):
            raise ValidationError(f"a list with slug {slug!r} already exists")
        conn.execute(
            insert(LISTS).values(
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


def check_new_list(slug: str, name: Localized, languages: list[str],
                   default_language: str) -> tuple[Localized, str]:
    """The name (a text or a table) and default language of a new list, or a ValidationError."""
    if not SLUG.fullmatch(slug):
        raise ValidationError(
            f"list slug {slug!r} must be lowercase letters, digits and dashes (max 63)"
        )
    default_language = default_language.lower()
    check_name(_split(name, default_language)[0])
    if default_language not in languages:
        raise ValidationError(
            f"default language {default_language!r} is not among the list's languages "
            f"({', '.join(languages)})"
        )
    return name, default_language


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


def read_list_definitions(path) -> list[dict]:
    """Read subscribers/lists.toml: one [[list]] table per list."""
    import tomllib

    from newsletter.config import ConfigError

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    lists = data.get("list", [])
    if not isinstance(lists, list) or not all(isinstance(x, dict) for x in lists):
        raise ConfigError(f"{path}: write each list as a [[list]] table")
    out = []
    for i, item in enumerate(lists, start=1):
        missing = [k for k in ("slug", "name", "languages") if k not in item]
        if missing:
            raise ConfigError(f"{path}: list #{i}: missing {', '.join(missing)}")
        problem = _definition_problem(item)
        if problem:
            raise ConfigError(f"{path}: list #{i} ({str(item['slug'])[:64]!r}): {problem}")
        for key in ("name", "description"):
            try:
                if key in item:
                    item[key] = check_text(item[key])
            except ValueError as exc:
                raise ConfigError(f"{path}: list #{i}: {key}: {exc}") from None
        out.append(item)
    return out


# key -> (accepted types, what to write): a wrong type is one line, not a traceback later
_DEFINITION_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "slug": ((str,), "a string"),
    "name": ((str, dict), "a string or a table { en = \"...\", fr = \"...\" }"),
    "description": ((str, dict), "a string or a table { en = \"...\", fr = \"...\" }"),
    "languages": ((list, str), 'a list like ["en", "fr"]'),
    "default_language": ((str,), "a string"),
    "opt_in": ((str,), '"double" or "single"'),
    "public": ((bool,), "true or false"),
}


def _definition_problem(item: dict) -> str:
    """Why a [[list]] table cannot be used, or ''."""
    for key, (types, what) in _DEFINITION_TYPES.items():
        if key in item and not isinstance(item[key], types):
            return f"{key} must be {what}"
    langs = item["languages"]
    if isinstance(langs, list) and not all(isinstance(x, str) for x in langs):
        return 'languages must be a list of codes like ["en", "fr"]'
    if item.get("opt_in", "double") not in ("double", "single"):
        return 'opt_in must be "double" or "single"'
    return ""


def check_name(name: str) -> str:
    """A list name as stored: stripped, non-empty, printable, at most 200 characters."""
    name = name.strip()
    if not name:
        raise ValidationError("a list needs a --name")
    if len(name) > 200:
        raise ValidationError(f"a list name has at most 200 characters (this one has {len(name)})")
    if any(not ch.isprintable() for ch in name):
        raise ValidationError("a list name cannot contain control characters or line breaks")
    return name


def _languages_of(item: dict) -> list[str]:
    langs = item["languages"]
    return parse_languages(langs if isinstance(langs, str) else ",".join(langs))


@dataclass
class SyncReport:
    """What `lists sync` did (or, for a dry run, would do)."""

    created: list[str] = field(default_factory=list)
    changed: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)


def sync_lists(engine: Engine, path, *, dry_run: bool = False,
               force: bool = False) -> SyncReport:
    """Create the lists of lists.toml that are missing and apply its changes to the others.

    Every change is checked before any is written, so a refused one leaves every list as it was.
    """
    report = SyncReport()
    existing = {lst.slug: lst for lst in all_lists(engine)}
    items = read_list_definitions(path)
    planned: list[tuple[str, ListUpdate]] = []
    for item in items:
        langs = _languages_of(item)
        if item["slug"] not in existing:
            check_new_list(item["slug"], item["name"], langs,
                           item.get("default_language", langs[0]))
            report.created.append(item["slug"])
            continue
        default = existing[item["slug"]].default_language
        wanted = ListUpdate(name=_split(item["name"], default)[0],
                            description=_split(item.get("description", ""), default)[0],
                            languages=langs,
                            default_language=item.get("default_language", langs[0]))
        changes = update_list(engine, item["slug"], wanted, force=force, dry_run=True)
        if changes:
            planned.append((item["slug"], wanted))
            report.changed[item["slug"]] = changes
    if dry_run:
        return report
    for item in items:
        if item["slug"] in report.created:
            langs = _languages_of(item)
            add_list(engine, slug=item["slug"], name=item["name"], languages=langs,
                     default_language=item.get("default_language", langs[0]),
                     double_opt_in=item.get("opt_in", "double") == "double",
                     public=item.get("public", True), description=item.get("description", ""))
    for slug, wanted in planned:
        update_list(engine, slug, wanted, force=force)
    for item in items:
        if item["slug"] in existing:  # their per-language names and descriptions
            _retitle(engine, existing[item["slug"]], item)
    return report


@dataclass(frozen=True)
class ListUpdate:
    """The new values of a list; None leaves a value as it is."""

    name: str | None = None
    description: str | None = None
    languages: list[str] | None = None
    default_language: str | None = None


def _readers(conn: Connection, row: Any, langs: list[str]) -> dict[str, int]:
    """How many subscribers still on the list read each of `langs` (those read by nobody: none)."""
    s, c = SUBSCRIBERS, SUBSCRIPTIONS
    lang = ListLanguages.of(row).effective_sql(s.c.language)
    rows = conn.execute(
        select(lang, func.count()).select_from(s.join(c, c.c.subscriber_id == s.c.id))
        .where(c.c.list_id == row.id, c.c.status != "unsubscribed", lang.in_(langs))
        .group_by(lang))
    return {language: n for language, n in rows if n}


def update_list(engine: Engine, slug: str, wanted: ListUpdate, *, force: bool = False,
                dry_run: bool = False) -> dict[str, tuple[Any, Any]]:
    """Change a list's name, description, languages or default; returns field -> (old, new).

    Removing a language that subscribers of the list read is refused with their count unless
    `force`: their own preference is kept, and they read the list in its default language
    (audience/language.py) until it offers theirs again.
    """
    with engine.begin() as conn:
        row = conn.execute(select(LISTS).where(LISTS.c.slug == slug)).first()
        if row is None:
            raise NotFoundError(f"no list {slug!r} (see `newsletter lists list`)")
        new = _new_values(row, wanted)
        removed = [lang for lang in row.languages if lang not in new["languages"]]
        readers = _readers(conn, row, removed) if removed else {}
        if readers and not force:
            raise ValidationError(
                f"list {slug!r}: {sum(readers.values())} subscriber(s) read "
                f"{', '.join(readers)}, which would no longer be offered; keep the language, or "
                "add --force (their preference is kept, and they will get the list's default "
                "language)")
        changes = {k: (getattr(row, k), v) for k, v in new.items() if getattr(row, k) != v}
        if changes and not dry_run:
            conn.execute(update(LISTS).where(LISTS.c.id == row.id)
                         .values(**{k: v for k, (_, v) in changes.items()}))
    return changes


def _new_values(row: Any, wanted: ListUpdate) -> dict[str, Any]:
    languages = list(wanted.languages) if wanted.languages is not None else list(row.languages)
    default = (wanted.default_language or row.default_language).lower()
    if wanted.default_language is None and default not in languages:
        default = languages[0]  # the old default was removed: the first language takes over
    if default not in languages:
        raise ValidationError(f"default language {default!r} is not among the list's languages "
                              f"({', '.join(languages)})")
    name = row.name if wanted.name is None else check_name(wanted.name)
    description = row.description if wanted.description is None else wanted.description
    return {"name": name, "description": description, "languages": languages,
            "default_language": default}


def _refuse_while_sending(conn: Connection, list_id: int, slug: str, action: str) -> None:
    sending = conn.scalars(select(ISSUES.c.slug).where(
        ISSUES.c.list_id == list_id, ISSUES.c.status.in_(SENDING))).all()
    if sending:
        raise ValidationError(f"cannot {action} list {slug!r} while issue "
                              f"{', '.join(map(repr, sending))} is sending to it; let it finish "
                              "(or cancel it) first")


def rename_list(engine: Engine, old: str, new: str) -> ListInfo:
    """Give a list a new slug (which List-Id and issue.toml files use)."""
    if not SLUG.fullmatch(new):
        raise ValidationError(
            f"list slug {new!r} must be lowercase letters, digits and dashes (max 63)")
    with engine.begin() as conn:
        list_id = conn.scalar(select(LISTS.c.id).where(LISTS.c.slug == old))
        if list_id is None:
            raise NotFoundError(f"no list {old!r} (see `newsletter lists list`)")
        if conn.scalar(select(LISTS.c.id).where(LISTS.c.slug == new)):
            raise ValidationError(f"a list with slug {new!r} already exists")
        _refuse_while_sending(conn, list_id, old, "rename")
        conn.execute(update(LISTS).where(LISTS.c.id == list_id).values(slug=new))
    return get_list(engine, new)


@dataclass(frozen=True)
class DeleteReport:
    """What deleting a list removed; suppressions are never touched."""

    subscriptions: int
    issues: int
    deliveries: int


def count_issues(engine: Engine, list_id: int) -> int:
    """How many issues (drafts, sent, any) belong to a list."""
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(ISSUES)
                           .where(ISSUES.c.list_id == list_id)) or 0


def delete_list(engine: Engine, slug: str) -> DeleteReport:
    """Delete a list with its subscriptions and issue records; refused while an issue sends."""
    with engine.begin() as conn:
        list_id = conn.scalar(select(LISTS.c.id).where(LISTS.c.slug == slug))
        if list_id is None:
            raise NotFoundError(f"no list {slug!r} (see `newsletter lists list`)")
        _refuse_while_sending(conn, list_id, slug, "delete")
        deliveries = conn.execute(
            delete(DELIVERIES).where(DELIVERIES.c.list_id == list_id)).rowcount
        issues = conn.execute(
            delete(ISSUES).where(ISSUES.c.list_id == list_id)).rowcount
        subscriptions = conn.execute(
            delete(SUBSCRIPTIONS).where(SUBSCRIPTIONS.c.list_id == list_id)).rowcount
        conn.execute(delete(LISTS).where(LISTS.c.id == list_id))
    return DeleteReport(subscriptions, issues, deliveries)


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
            conn.execute(update(LISTS).where(LISTS.c.id == mlist.id).values(**values))
