"""Reading an issue folder: issue.toml plus one Markdown file per language with TOML front matter.

    issues/<slug>/issue.toml     shared keys (list, date, volume, number, template, allow_raw_html)
    issues/<slug>/en.md          +++ front matter +++ then the Markdown body
    issues/<slug>/fr.md          keys in a language file override issue.toml

Everything is checked here, with the file and line of the problem, so later stages can trust it.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsletter.audience.lists import SLUG as LIST_SLUG
from newsletter.compose.errors import ComposeError

FRONT_KEYS = {
    "title": str, "subject": str, "preheader": str, "date": (str, dt.date), "volume": (str, int),
    "number": (str, int), "list": str, "template": str, "translated_from": dict,
}
ISSUE_KEYS = {**FRONT_KEYS, "allow_raw_html": bool, "copied_from": str, "source_language": str}
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})?$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
FENCE = "+++"
DEFAULT_TEMPLATE = "email/base.mjml.j2"


@dataclass(frozen=True)
class EditionSource:
    """One language file: merged front matter, Markdown body and where each key came from."""

    language: str
    path: Path
    front: dict[str, Any]
    body: str
    body_line: int  # 1-based line of the body's first line in the file
    origins: dict[str, tuple[Path, int]] = field(default_factory=dict)

    def origin(self, key: str) -> tuple[Path, int | None]:
        """File and line where a front-matter key was set (the .md file when unset)."""
        path, line = self.origins.get(key, (self.path, 0))
        return path, line or None

    @property
    def title(self) -> str:
        return str(self.front.get("title") or self.front.get("subject") or "")

    @property
    def subject(self) -> str:
        return str(self.front.get("subject") or self.front.get("title") or "")

    @property
    def preheader(self) -> str:
        return str(self.front.get("preheader", ""))

    @property
    def date(self) -> dt.date:
        return self.front["date"]

    @property
    def volume(self) -> str:
        return str(self.front.get("volume", ""))

    @property
    def number(self) -> str:
        return str(self.front.get("number", ""))

    @property
    def template(self) -> str:
        return str(self.front.get("template") or DEFAULT_TEMPLATE)


@dataclass(frozen=True)
class IssueSource:
    """An issue folder as read from disk."""

    slug: str
    path: Path
    list_slug: str
    languages: tuple[str, ...]
    editions: dict[str, EditionSource]
    settings: dict[str, Any]
    workspace: Path
    # Front-matter problems, kept only when read with keep_going (`issue check`); the language
    # files they name are in `broken` and have only a body to check.
    problems: tuple[ComposeError, ...] = ()
    broken: frozenset[str] = frozenset()

    @property
    def allow_raw_html(self) -> bool:
        return bool(self.settings.get("allow_raw_html", False))

    def display(self, path: Path) -> str:
        """A path as shown to editors: relative to the workspace when inside it."""
        try:
            return str(path.relative_to(self.workspace))
        except ValueError:
            return str(path)


def _key_lines(text: str, first_line: int) -> dict[str, int]:
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=first_line):
        match = re.match(r"\s*([A-Za-z_][\w-]*)\s*=", line)
        if match and match.group(1) not in lines:
            lines[match.group(1)] = number
    return lines


class Problems(list[ComposeError]):
    """Front-matter problems met while reading: raised at once, or kept with keep_going."""

    def __init__(self, keep_going: bool) -> None:
        super().__init__()
        self.keep_going = keep_going

    def add(self, error: ComposeError) -> None:
        """Raise `error`, or keep it and let reading go on with what is sound."""
        if not self.keep_going:
            raise error
        self.append(error)


def toml_string(value: str) -> str:
    """`value` as a TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = "".join(
        f"\\u{ord(ch):04x}" if ch < " " or ch == "\x7f" else "\\" + ch if ch in '"\\' else ch
        for ch in value
    )
    return f'"{escaped}"'


_KEY_LINE = re.compile(r"\s*([A-Za-z_][\w-]*)\s*=")


def set_keys(toml_text: str, changes: dict[str, str | None]) -> str:
    """`toml_text` with top-level `key = value` lines set (value as TOML text) or removed (None).

    Every other line is kept as the editor wrote it (comments, order, quoting); a key that is
    not there yet is added after the last top-level line.
    """
    out: list[str] = []
    done: set[str] = set()
    table_at = None  # keys after a [table] header are not top-level
    for line in toml_text.splitlines(keepends=True):
        if table_at is None and line.lstrip().startswith("["):
            table_at = len(out)
        match = _KEY_LINE.match(line)
        if table_at is None and match and match.group(1) in changes:
            key = match.group(1)
            value = changes[key]
            if key not in done and value is not None:
                out.append(f"{key} = {value}\n")
            done.add(key)
            continue
        out.append(line)
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    added = [f"{k} = {v}\n" for k, v in changes.items() if k not in done and v is not None]
    at = len(out) if table_at is None else table_at
    return "".join(out[:at] + added + out[at:])


def set_front_keys(text: str, changes: dict[str, str | None], shown: str) -> str:
    """A language file with keys of its +++ front matter set or removed; the body untouched."""
    front, body, body_line = split_front_matter(text, shown)
    head = text.splitlines(keepends=True)[: body_line - 1]
    return head[0] + set_keys(front, changes) + head[-1] + body


def _fix_hint(line: str) -> str:
    """`; write key = "value"` when a `key = value` line holds no valid TOML value, else ''."""
    match = re.fullmatch(r"\s*([A-Za-z_][\w-]*)\s*=\s*(.*?)\s*", line)
    if not match or not match.group(2):
        return ""
    key, value = match.groups()
    try:
        tomllib.loads(f"x = {value}")
        return ""
    except tomllib.TOMLDecodeError:
        pass
    if value[0] in "\"'":  # a string with a stray or missing quote: keep what is inside
        value = value[1:-1] if len(value) > 1 and value[-1] == value[0] else value[1:]
    return f"; write {key} = {toml_string(value)}"


def _parse_toml(text: str, path: Path, shown: str, first_line: int) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        at = int(found.group(1)) if found else 1
        reason = re.sub(r"\s*\(at line.*\)$", "", str(exc))
        lines = text.splitlines()
        hint = _fix_hint(lines[at - 1]) if 0 < at <= len(lines) else ""
        raise ComposeError(f"invalid front matter: {reason}{hint}", shown,
                           first_line + at - 1) from None


def _check_keys(
    data: dict[str, Any], allowed: dict[str, Any], shown: str, lines: dict[str, int],
    problems: Problems,
) -> None:
    """Check every key; a bad one is reported and dropped, so the others still count."""
    for key, value in list(data.items()):
        try:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise ComposeError(f"unknown key {key!r} (known: {known})", shown, lines.get(key))
            if not isinstance(value, allowed[key]) or (
                    isinstance(value, bool) != (allowed[key] is bool)):
                raise ComposeError(f"{key}: unexpected value {value!r}", shown, lines.get(key))
            if key == "date":
                data[key] = _parse_date(value, shown, lines.get(key))
        except ComposeError as exc:
            del data[key]
            problems.add(exc)


def _parse_date(value: Any, shown: str, line: int | None) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ComposeError(f"date: expected YYYY-MM-DD, got {value!r}", shown, line) from None


def _read_text(path: Path, shown: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not content
    except UnicodeDecodeError as exc:
        raise ComposeError(f"not valid UTF-8 (byte {exc.start})", shown) from None


def split_front_matter(text: str, shown: str) -> tuple[str, str, int]:
    """Split `+++ toml +++ body`; return (toml, body, 1-based line of the body's first line)."""
    lines = text.splitlines(keepends=True)
    if lines and lines[0].strip() == "---":
        raise ComposeError(f"front matter is TOML between {FENCE} lines, not YAML between ---",
                           shown, 1)
    if not lines or lines[0].strip() != FENCE:
        raise ComposeError(f"missing front matter: the file must start with a {FENCE} line",
                           shown, 1)
    for index in range(1, len(lines)):
        if lines[index].strip() == FENCE:
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), index + 2
    raise ComposeError(f"front matter is never closed: add a {FENCE} line after it", shown, 1)


def _read_edition(
    path: Path, language: str, shared: dict[str, Any], shared_origins: dict[str, tuple[Path, int]],
    shown: str, problems: Problems, shared_sound: bool = True,
) -> EditionSource | None:
    """One language file; None when not even its body can be read.

    Missing keys are reported only when both this front matter and issue.toml could be read:
    otherwise they are the echo of an error already reported.
    """
    try:
        text = _read_text(path, shown)
    except ComposeError as exc:
        problems.add(exc)
        return None
    sound = shared_sound
    try:
        front_text, body, body_line = split_front_matter(text, shown)
    except ComposeError as exc:  # keep checking the body when the fence is only missing
        problems.add(exc)
        sound = False
        front_text, body, body_line = "", text if text.lstrip()[:3] not in ("---", "+++") else "", 1
    try:
        front = _parse_toml(front_text, path, shown, 2)
    except ComposeError as exc:
        problems.add(exc)
        front, sound = {}, False
    lines = _key_lines(front_text, 2)
    _check_keys(front, FRONT_KEYS, shown, lines, problems)
    merged = {**shared, **front}
    origins = dict(shared_origins)
    origins.update({k: (path, lines.get(k, 0)) for k in front})
    if not merged.get("title") and not merged.get("subject") and sound:
        problems.add(ComposeError("front matter needs a title or a subject", shown, 1))
    if "date" not in merged and sound:
        problems.add(ComposeError("front matter needs a date (YYYY-MM-DD) here or in issue.toml",
                                  shown, 1))
    return EditionSource(language, path, merged, body, body_line, origins)


def load_issue(workspace: Path, slug: str, keep_going: bool = False) -> IssueSource:
    """Read issues/<slug>/ and check its front matter; raise ComposeError naming file and line.

    With keep_going, front-matter problems are kept in `problems` instead (every one of them,
    in every file) so that `issue check` can report them along with the other rules' findings.
    """
    workspace = Path(workspace).resolve()
    if not SLUG_RE.fullmatch(slug):
        raise ComposeError(f"invalid issue slug {slug!r}: use lowercase letters, digits, . _ -")
    folder = workspace / "issues" / slug
    if not folder.is_dir():
        raise ComposeError(f"no issue folder issues/{slug}/ in {workspace}")

    def show(path: Path) -> str:
        return str(path.relative_to(workspace))

    problems = Problems(keep_going)
    settings: dict[str, Any] = {}
    origins: dict[str, tuple[Path, int]] = {}
    issue_toml = folder / "issue.toml"
    shared_sound = True
    if issue_toml.exists():
        try:
            text = _read_text(issue_toml, show(issue_toml))
            settings = _parse_toml(text, issue_toml, show(issue_toml), 1)
        except ComposeError as exc:
            problems.add(exc)
            text, shared_sound = "", False
        lines = _key_lines(text, 1)
        _check_keys(settings, ISSUE_KEYS, show(issue_toml), lines, problems)
        origins = {k: (issue_toml, lines.get(k, 0)) for k in settings}
    shared = {k: v for k, v in settings.items() if k in FRONT_KEYS}

    editions: dict[str, EditionSource] = {}
    broken: set[str] = set()
    for path in sorted(folder.glob("*.md")):
        if path.stem.upper() == "README":
            continue
        if not LANGUAGE_RE.fullmatch(path.stem):
            problems.add(ComposeError(
                "file name is not a language code (like en.md, fr.md, pt-BR.md)", show(path)))
            continue
        before = len(problems)
        edition = _read_edition(path, path.stem, shared, origins, show(path), problems,
                                shared_sound)
        if edition is not None:
            editions[path.stem] = edition
        if len(problems) > before or not shared_sound:
            broken.add(path.stem)
    if not editions:
        raise (problems[0] if problems else
               ComposeError(f"issues/{slug}/ has no language file (en.md, fr.md, ...)"))
    list_slug = _list_of(editions, folder, show, problems) if shared_sound else ""
    return IssueSource(
        slug=slug, path=folder, list_slug=list_slug, languages=tuple(editions),
        editions=editions, settings=settings, workspace=workspace,
        problems=tuple(problems), broken=frozenset(broken),
    )


def _list_of(editions: dict[str, EditionSource], folder: Path, show: Any,
             problems: Problems) -> str:
    """The one list every language file is for ('' after a reported problem)."""
    lists = {e.front.get("list") for e in editions.values()}
    if None in lists or "" in lists:
        missing = next(e for e in editions.values() if not e.front.get("list"))
        problems.add(ComposeError("which list is this for? set list = \"...\" in issue.toml",
                                  show(missing.path), 1))
        return ""
    if len(lists) > 1:
        problems.add(ComposeError(
            f"the language files name different lists: {sorted(map(str, lists))}",
            show(folder / "issue.toml")))
        return ""
    list_slug = str(next(iter(lists)))
    if not LIST_SLUG.fullmatch(list_slug):
        path, line = next(iter(editions.values())).origin("list")
        problems.add(ComposeError(f"list: {list_slug[:80]!r} is not a list slug (lowercase "
                                  "letters, digits and dashes)", show(path), line))
        return ""
    return list_slug
