"""Creating and changing mailing lists: add, update (name, description, languages), rename,
delete. Reads are audience/lists.py's; lists.toml is audience/listsync.py's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from newsletter.audience.language import ListLanguages
from newsletter.audience.lists import SLUG, ListInfo, get_list
from newsletter.db.tables import DELIVERIES, ISSUES, LISTS, SUBSCRIBERS, SUBSCRIPTIONS
from newsletter.errors import NotFoundError, ValidationError
from newsletter.localized import Localized, pick

# An issue in these states still has mails to send to the list's subscribers.
SENDING = ("sending", "paused")


def split_text(value: Localized, default_language: str) -> tuple[str, dict[str, str] | None]:
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
    name, names = split_text(name, default_language)
    description, descriptions = split_text(description, default_language)
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
    check_name(split_text(name, default_language)[0])
    if default_language not in languages:
        raise ValidationError(
            f"default language {default_language!r} is not among the list's languages "
            f"({', '.join(languages)})"
        )
    return name, default_language


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

