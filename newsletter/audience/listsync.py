"""`lists sync`: read subscribers/lists.toml and make the lists match it (through
audience/listedits.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, update

from newsletter.audience.language import parse_languages
from newsletter.audience.listedits import (
    ListUpdate,
    add_list,
    check_new_list,
    split_text,
    update_list,
)
from newsletter.audience.lists import ListInfo, all_lists
from newsletter.db.tables import LISTS
from newsletter.localized import check_text


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
        wanted = ListUpdate(name=split_text(item["name"], default)[0],
                            description=split_text(item.get("description", ""), default)[0],
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



def _retitle(engine: Engine, mlist: ListInfo, item: Mapping[str, Any]) -> None:
    """Store a lists.toml entry's names and descriptions on an existing list."""
    values: dict[str, Any] = {}
    for key, tables in (("name", "names"), ("description", "descriptions")):
        if key in item:
            text, table = split_text(item[key], mlist.default_language)
            if text or key == "description":
                values.update({key: text, tables: table})
    if values:
        with engine.begin() as conn:
            conn.execute(update(LISTS).where(LISTS.c.id == mlist.id).values(**values))
