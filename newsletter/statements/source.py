"""Reading a statement: statements/<slug>/<lang>.md, TOML front matter then Markdown.

    +++
    title = "A New Deal for refugees, migrants and societies"
    opens = 2026-01-10
    closes = 2026-03-31
    cap = 500            # optional: no more signatures once this many are approved
    list = "news"        # optional: offer this list's newsletter on the form
    +++
    The text, in Markdown (rendered by the issues' pipeline, compose/richtext.py).

Every language the tool speaks (i18n.LANGUAGES) must have its file, and the dates, cap and list
must be the same in each. `check_statement` returns every problem, one line each.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.compose.errors import ComposeError
from newsletter.compose.richtext import make_parser, render_html
from newsletter.compose.source import split_front_matter
from newsletter.errors import NotFoundError
from newsletter.i18n import LANGUAGES

FOLDER = "statements"
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,127}$")
KEYS: dict[str, Any] = {"title": str, "opens": dt.date, "closes": dt.date, "cap": int,
                        "list": str}
REQUIRED = ("title", "opens", "closes")
SHARED = ("opens", "closes", "cap", "list")


class StatementError(ComposeError):
    """A statement's source is missing, incomplete or malformed."""


@dataclass(frozen=True)
class StatementText:
    """One language of a statement."""

    language: str
    title: str
    body: str

    @property
    def html(self) -> str:
        """The text as sanitized HTML, like an issue's."""
        md = make_parser()
        env: dict[str, Any] = {}
        return render_html(md, md.parse(self.body, env), env, clean=True)


@dataclass(frozen=True)
class Statement:
    """A statement in every language, with its dates: open from `opens` (00:00 UTC) to the
    end of `closes`."""

    slug: str
    opens: dt.date
    closes: dt.date
    cap: int | None
    list_slug: str | None
    texts: dict[str, StatementText]

    @property
    def opens_at(self) -> dt.datetime:
        """The first instant signatures are taken (the opening day, 00:00 UTC)."""
        return dt.datetime.combine(self.opens, dt.time(), dt.UTC)

    @property
    def closes_at(self) -> dt.datetime:
        """The first instant signatures are refused (the day after the closing day, UTC)."""
        return dt.datetime.combine(self.closes + dt.timedelta(days=1), dt.time(), dt.UTC)

    def is_open(self, now: dt.datetime) -> bool:
        """True while the statement takes signatures (the cap aside)."""
        return self.opens_at <= now < self.closes_at

    def text(self, language: str) -> StatementText:
        """The text in a language, else in the first language it has."""
        return self.texts.get(language) or next(iter(self.texts.values()))


def folder(workspace: Path, slug: str) -> Path:
    """statements/<slug>/ in the workspace; NotFoundError for a slug that cannot be one."""
    if not SLUG_RE.match(slug):
        raise NotFoundError(f"no statement {slug!r}")
    path = workspace / FOLDER / slug
    if not path.is_dir():
        raise NotFoundError(f"no statement {slug!r}: {FOLDER}/{slug}/ does not exist")
    return path


def _front(path: Path, shown: str) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StatementError(f"not valid UTF-8 (byte {exc.start})", shown) from None
    toml, body, _line = split_front_matter(text, shown)
    try:
        data = tomllib.loads(toml)
    except tomllib.TOMLDecodeError as exc:
        raise StatementError(f"invalid front matter: {exc}", shown) from None
    for key, value in data.items():
        if key not in KEYS:
            raise StatementError(f"unknown key {key!r} (known: {', '.join(KEYS)})", shown)
        wanted = KEYS[key]
        if not isinstance(value, wanted) or isinstance(value, bool) or (
                wanted is dt.date and isinstance(value, dt.datetime)):
            kind = "a date like 2026-03-31" if wanted is dt.date else wanted.__name__
            raise StatementError(f"{key}: expected {kind}, got {value!r}", shown)
    for key in REQUIRED:
        if key not in data:
            raise StatementError(f"missing {key!r} in the front matter", shown)
    if data["closes"] < data["opens"]:
        raise StatementError("closes is before opens", shown)
    if data.get("cap", 1) < 1:
        raise StatementError("cap: expected a positive number", shown)
    return data, body


def _read(workspace: Path, slug: str) -> tuple[dict[str, tuple[dict[str, Any], str]],
                                               list[StatementError]]:
    base = folder(workspace, slug)
    found: dict[str, tuple[dict[str, Any], str]] = {}
    problems: list[StatementError] = []
    for lang in LANGUAGES:
        path = base / f"{lang}.md"
        shown = f"{FOLDER}/{slug}/{lang}.md"
        if not path.is_file():
            problems.append(StatementError("missing translation", shown))
            continue
        try:
            found[lang] = _front(path, shown)
        except ComposeError as exc:
            problems.append(StatementError(exc.message, shown, exc.line))
    first = next(iter(found), None)
    for lang, (data, _body) in found.items():
        for key in SHARED:
            if first is not None and data.get(key) != found[first][0].get(key):
                problems.append(StatementError(
                    f"{key} differs from {first}.md", f"{FOLDER}/{slug}/{lang}.md"))
    return found, problems


def check_statement(workspace: Path, slug: str) -> list[str]:
    """Every problem of a statement's source, one line each; [] when it is sound."""
    return [str(problem) for problem in _read(workspace, slug)[1]]


def load_statement(workspace: Path, slug: str) -> Statement:
    """The statement, or its first problem as a StatementError (NotFoundError when absent)."""
    found, problems = _read(workspace, slug)
    if problems:
        raise problems[0]
    data = next(iter(found.values()))[0]
    texts = {lang: StatementText(lang, front["title"], body) for lang, (front, body)
             in found.items()}
    return Statement(slug, data["opens"], data["closes"], data.get("cap"), data.get("list"),
                     texts)
