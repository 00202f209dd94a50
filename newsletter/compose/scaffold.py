"""`newsletter issue new`: a skeleton issue folder editors fill in."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsletter.audience.lists import SLUG as LIST_SLUG
from newsletter.compose.errors import ComposeError
from newsletter.compose.source import (
    LANGUAGE_RE,
    SLUG_RE,
    set_front_keys,
    set_keys,
    split_front_matter,
    toml_string,
)
from newsletter.i18n import translations

ISSUE_TOML = """\
# Shared by every language of this issue; a language file's front matter overrides these keys.
list = {list_slug}
date = {date}
# volume = 1
# number = "01"
# template = "email/base.mjml.j2"   # a layout under templates/ (see templates/README.md)
# allow_raw_html = false            # true skips sanitizing raw HTML in the Markdown
"""

EDITION = """\
+++
title = "{title}"
subject = "{subject}"
preheader = "{preheader}"
+++

{intro}

![{alt}](image.png)

## {title}

{intro}

[{more}](https://example.org/){{.button}}
"""


def new_issue(
    workspace: Path, slug: str, languages: Sequence[str], list_slug: str, today: dt.date,
) -> list[Path]:
    """Write issues/<slug>/issue.toml and one Markdown file per language; never overwrite."""
    if not SLUG_RE.fullmatch(slug):
        raise ComposeError(f"invalid issue slug {slug!r}: use lowercase letters, digits, . _ -")
    if not LIST_SLUG.fullmatch(list_slug):
        raise ComposeError(f"invalid list slug {list_slug!r}: use lowercase letters, digits "
                           "and dashes (at most 63), as in `newsletter lists add`")
    bad = [lang for lang in languages if not LANGUAGE_RE.fullmatch(lang)]
    if bad or not languages:
        raise ComposeError(f"invalid language code(s): {', '.join(bad) or '(none)'}")
    folder = Path(workspace) / "issues" / slug
    if folder.exists():
        raise ComposeError(f"issues/{slug}/ already exists")
    folder.mkdir(parents=True)
    written = [folder / "issue.toml"]
    issue_toml = ISSUE_TOML.format(list_slug=toml_string(list_slug), date=today.isoformat())
    written[0].write_text(issue_toml, encoding="utf-8")
    for lang in languages:
        _ = translations(lang, "email").gettext
        path = folder / f"{lang}.md"
        path.write_text(EDITION.format(
            title=_("Title of the issue"), subject=_("Subject line of the email"),
            preheader=_("One sentence shown after the subject in the inbox."),
            intro=_("Write the introduction here."),
            alt=_("Describe the image for readers who cannot see it"), more=_("Read more"),
        ), encoding="utf-8")
        written.append(path)
    return written


@dataclass
class CopiedIssue:
    """What `issue new --from` wrote and changed."""

    files: list[Path]
    number: tuple[str, str] | None = None  # (before, after) when a number was bumped
    warnings: list[str] = field(default_factory=list)


def next_number(value: Any) -> Any:
    """The number after `value`: 11 -> 12, "09" -> "10" (padding kept); None if not a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value + 1
    if isinstance(value, str) and re.fullmatch(r"\d{1,9}", value.strip()):
        digits = value.strip()
        return str(int(digits) + 1).zfill(len(digits))
    return None


def _changes(toml_text: str) -> tuple[dict[str, str | None], tuple[str, str] | None]:
    """For one TOML block: clear the date, number + 1 when it is a number -> (changes, bump)."""
    try:
        data = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError:
        return {}, None
    changes: dict[str, str | None] = {"date": None} if "date" in data else {}
    after = next_number(data["number"]) if "number" in data else None
    if after is None:
        return changes, None
    changes["number"] = toml_string(after) if isinstance(after, str) else str(after)
    return changes, (str(data["number"]), str(after))


def copy_issue(workspace: Path, slug: str, previous: str) -> CopiedIssue:
    """issues/<slug>/ as a copy of issues/<previous>/ (files, images, settings), renumbered.

    The date is cleared (`issue check` asks for it), `number` goes up by one wherever it is set
    (the volume is kept: change both when the numbering restarts each year), and issue.toml
    records `copied_from` so that `issue check` warns while a subject is still the old one.
    """
    if not SLUG_RE.fullmatch(slug):
        raise ComposeError(f"invalid issue slug {slug!r}: use lowercase letters, digits, . _ -")
    source = Path(workspace) / "issues" / previous
    if not SLUG_RE.fullmatch(previous) or not source.is_dir():
        raise ComposeError(f"--from {previous}: no issue folder issues/{previous}/")
    folder = Path(workspace) / "issues" / slug
    if folder.exists():
        raise ComposeError(f"issues/{slug}/ already exists")
    shutil.copytree(source, folder, symlinks=True)
    result = CopiedIssue(files=[])
    issue_toml = folder / "issue.toml"
    text = issue_toml.read_text("utf-8-sig") if issue_toml.exists() else ""
    changes, result.number = _changes(text)
    issue_toml.write_text(set_keys(text, {**changes, "copied_from": toml_string(previous)}),
                          "utf-8")
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".md" and LANGUAGE_RE.fullmatch(path.stem) and path.parent == folder:
            _renumber_edition(path, f"issues/{slug}/{path.name}", result)
        if path.is_file():
            result.files.append(path)
    if result.number is None:
        result.warnings.append("no numeric `number` to bump: set this issue's number yourself")
    return result


def _renumber_edition(path: Path, shown: str, result: CopiedIssue) -> None:
    text = path.read_text("utf-8-sig")
    try:
        changes, bumped = _changes(split_front_matter(text, shown)[0])
    except ComposeError:
        return  # copied as it was; `issue check` reports the front matter
    if changes:
        path.write_text(set_front_keys(text, changes, shown), "utf-8")
    result.number = result.number or bumped
