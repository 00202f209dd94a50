"""Stale translations: which sections of the source language changed since a file was translated.

`newsletter issue translated SLUG --lang fr` records, in fr.md's front matter, a short hash of
each section of the source language's body as it is now (sections are split by `---` lines):

    translated_from = { source = "en", sections = ["3f2a9c01d4e7", "b81c0e55a9f2"] }

`issue check` hashes the source again and names the sections that differ.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from newsletter.compose.errors import ComposeError
from newsletter.compose.source import IssueSource, set_front_keys, toml_string

KEY = "translated_from"
SHOWN = 10  # section numbers named in one warning
_RULE = re.compile(r"^ {0,3}---\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def sections(body: str) -> list[str]:
    """The body's sections: text between `---` lines (not those inside fenced code)."""
    parts: list[list[str]] = [[]]
    fenced = False
    for line in body.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        if _RULE.match(line) and not fenced:
            parts.append([])
        else:
            parts[-1].append(line)
    return ["\n".join(part) for part in parts]


def section_hashes(body: str) -> list[str]:
    """A short hash per section; spacing at line ends and blank lines do not count."""
    def normal(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())
    return [hashlib.sha256(normal(s).encode("utf-8")).hexdigest()[:12] for s in sections(body)]


@dataclass(frozen=True)
class Staleness:
    """What changed in the source since a translation was marked current."""

    source: str
    changed: list[int]  # 1-based section numbers
    count_then: int
    count_now: int

    def describe(self, lang: str) -> str:
        """`sections 2 and 4 changed in en.md since translation` and what to do."""
        numbers = [str(n) for n in self.changed[:SHOWN]]
        if len(self.changed) > SHOWN:  # a rewritten source: the count says enough
            numbers[-1] += f" (and {len(self.changed) - SHOWN} more)"
        named = numbers[0] if len(numbers) == 1 else f"{', '.join(numbers[:-1])} and {numbers[-1]}"
        what = f"section{'s' if len(numbers) > 1 else ''} {named} changed"
        if self.count_then != self.count_now:
            what += f" ({self.count_now} sections now, {self.count_then} then)"
        return (f"{what} in {self.source}.md since translation: update {lang}.md, then run "
                f"`newsletter issue translated SLUG --lang {lang}`")


def staleness(source: IssueSource, lang: str) -> Staleness | None | str:
    """None when current or never marked; a Staleness; or a problem with the record (str)."""
    record = source.editions[lang].front.get(KEY)
    if record is None or lang in source.broken:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("source"), str) or not (
            isinstance(record.get("sections"), list)
            and all(isinstance(h, str) for h in record["sections"])):
        return (f'{KEY} must look like {{ source = "en", sections = ["...", ...] }}: '
                f"run `newsletter issue translated {source.slug} --lang {lang}` to rewrite it")
    origin = record["source"]
    if origin not in source.editions:
        return f"{KEY}: the issue has no {origin}.md to compare with"
    then, now = record["sections"], section_hashes(source.editions[origin].body)
    changed = [i + 1 for i in range(max(len(then), len(now)))
               if i >= len(then) or i >= len(now) or then[i] != now[i]]
    if not changed:
        return None
    return Staleness(origin, changed, len(then), len(now))


def source_language(source: IssueSource, lang: str, default: str) -> str:
    """The language a file is translated from: its record, issue.toml's, else `default`."""
    record = source.editions[lang].front.get(KEY)
    if isinstance(record, dict) and isinstance(record.get("source"), str):
        return str(record["source"])
    return str(source.settings.get("source_language") or default)


def mark_translated(source: IssueSource, lang: str, origin: str) -> Path:
    """Record in <lang>.md the current section hashes of <origin>.md; the rest left as written."""
    if lang not in source.editions:
        raise ComposeError(f"issue {source.slug!r} has no {lang}.md")
    if origin not in source.editions:
        raise ComposeError(f"issue {source.slug!r} has no {origin}.md to translate from")
    if origin == lang:
        raise ComposeError(f"{lang}.md is the source language: it is not translated from itself")
    path = source.editions[lang].path
    hashes = ", ".join(toml_string(h) for h in section_hashes(source.editions[origin].body))
    value = f"{{ source = {toml_string(origin)}, sections = [{hashes}] }}"
    text = path.read_text("utf-8-sig")
    path.write_text(set_front_keys(text, {KEY: value}, source.display(path)), "utf-8")
    return path
