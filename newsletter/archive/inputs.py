"""Everything a build reads, as one digest, so a build with nothing changed stops at once.

A full build (site.py) leaves `.archive-inputs.json` beside its manifest: the digest of its
inputs, the time span its pages stay right for, the stat of every file its issues refer to and
its report. The next build computes the digest again, which costs one database query and a few
small file reads, and when it matches (and the clock is still inside that span, and every file
of the manifest is still there) the site is up to date: nothing is planned, rendered or even
imported. Any doubt means a full build, which still renders only the pages whose inputs changed.

The digest covers:
- the rows of every edition with its issue and list (every column, so no column is missed);
- the [newsletter], [archive] and [languages] settings (secrets left out) and the workspace;
- the archive templates (built-in and the workspace's), the UI strings, the code's version;
- the statements (their texts and signatories, read only when the workspace has some).
The pictures and files the issues use are watched by their stat (a digest of megabytes of
pictures would cost more than it saves); the clock by `since`/`until` (pages change when an
issue's sent_at, an event's end or a statement's closing comes).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text

import newsletter
from newsletter.config import Settings, is_secret

if TYPE_CHECKING:
    from newsletter.archive.statementpages import ArchivedStatement

# Bumped when the way pages are built changes, so every page is rebuilt once after an upgrade.
RENDER_VERSION = "1"
PACKAGE = Path(newsletter.__file__).parent
LOCALES = PACKAGE / "locales"  # i18n.LOCALES, named here without importing Babel
CONFIG_SECTIONS = ("newsletter", "archive")

# Every edition with its issue and list, whatever its status: which of them the site shows is
# the planner's business, and a change to any of them is rare enough to cost a full build.
EDITIONS = text(
    "SELECT e.*, i.*, l.* FROM editions e JOIN issues i ON i.id = e.issue_id "
    "JOIN lists l ON l.id = i.list_id ORDER BY e.id"
)


def builtin_templates() -> Path:
    """The default archive templates shipped with the tool."""
    packaged = PACKAGE / "skeleton" / "templates" / "archive"
    if packaged.is_dir():
        return packaged
    return PACKAGE.resolve().parent / "templates" / "archive"


@dataclass
class Inputs:
    """What a build reads before planning: the digest and what was loaded to make it."""

    digest: str
    statements: list[ArchivedStatement] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _update(digest: Any, *values: Any) -> None:
    """Feed values unambiguously: each one's length and kind (string or repr), then all of
    them at once (one call per row: a query's rows are 1,500 x 35 values)."""
    texts = [value if isinstance(value, str) else repr(value) for value in values]
    sizes = [len(text) if text is value else -len(text)
             for text, value in zip(texts, values, strict=True)]
    digest.update(repr(sizes).encode())
    digest.update("".join(texts).encode("utf-8", "surrogatepass"))


def _config(settings: Settings) -> str:
    sections = {
        section: {key: value for key, value in settings.values.get(section, {}).items()
                  if not is_secret(section, key)}
        for section in CONFIG_SECTIONS
    }
    tables = sorted([f"{section}.{key}", table] for (section, key), table
                    in settings.tables.items() if section in CONFIG_SECTIONS)
    return json.dumps([str(settings.workspace.resolve()), sections, settings.languages, tables],
                      sort_keys=True, default=str)


def _files(folder: Path, pattern: str) -> Iterable[tuple[str, bytes]]:
    for path in sorted(folder.glob(pattern)):
        if path.is_file():
            yield path.relative_to(folder).as_posix(), path.read_bytes()


def _code() -> list[Any]:
    """The version and the archive's own modules (a checkout edited in place counts too)."""
    found: list[Any] = [newsletter.__version__, RENDER_VERSION]
    for entry in sorted(os.scandir(PACKAGE / "archive"), key=lambda e: e.name):
        if entry.name.endswith(".py"):
            info = entry.stat()
            found.append((entry.name, info.st_mtime_ns, info.st_size))
    return found


def _statements(settings: Settings, engine: Engine,
                warnings: list[str]) -> list[ArchivedStatement]:
    if not (settings.workspace / "statements").is_dir():  # statements/source.py's FOLDER
        return []
    # Imported only when there are statements: it brings the signature tables' code.
    from newsletter.archive.statements import load_statements

    return load_statements(settings.workspace, engine, warnings)


def read_inputs(settings: Settings, engine: Engine) -> Inputs:
    """The digest of everything the site is built from but the referenced files and the clock."""
    digest = hashlib.sha256()
    for value in (_config(settings), json.dumps(_code())):
        _update(digest, value)
    for folder in (settings.workspace / "templates" / "archive", builtin_templates()):
        _update(digest, str(folder))
        for name, data in _files(folder, "**/*"):
            _update(digest, name)
            digest.update(hashlib.sha256(data).digest())
    for name, data in _files(LOCALES, "*/LC_MESSAGES/*.po"):
        _update(digest, name)
        digest.update(hashlib.sha256(data).digest())
    with engine.connect() as conn:
        for row in conn.execute(EDITIONS):
            _update(digest, *row)
    warnings: list[str] = []
    statements = _statements(settings, engine, warnings)
    _update(digest, repr([statements, warnings]))
    return Inputs(digest.hexdigest(), statements, warnings)


def file_state(path: Path) -> list[int] | None:
    """What tells a referenced file changed: inode, size and mtime; None when not a file."""
    try:
        info = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return [info.st_ino, info.st_size, info.st_mtime_ns]


def watch(workspace: Path, paths: Iterable[Path]) -> dict[str, list[int] | None]:
    """The state of each referenced file, by its path relative to the workspace when inside
    it (the record lies in the public site: no need to show where the server keeps things)."""
    found = {}
    for path in paths:
        try:
            name = path.relative_to(workspace).as_posix()
        except ValueError:
            name = str(path)
        found[name] = file_state(path)
    return found


def files_unchanged(workspace: Path, watched: Mapping[str, Any]) -> bool:
    """Whether every watched file is as the last build saw it."""
    return all(file_state(workspace / name) == state for name, state in watched.items())


def still_current(record: Mapping[str, Any], digest: str, now: datetime,
                  workspace: Path) -> bool:
    """Whether the site that left this record was built from these very inputs and `now`
    falls in the span its pages stay right for."""
    if not record or record.get("digest") != digest:
        return False
    try:
        since = datetime.fromisoformat(record["since"])
        until = datetime.fromisoformat(record["until"]) if record.get("until") else None
    except (KeyError, TypeError, ValueError):
        return False
    if now < since or (until is not None and now >= until):
        return False
    return files_unchanged(workspace, record.get("files") or {})
