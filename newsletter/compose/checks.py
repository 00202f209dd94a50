"""Pre-send checks: a chain of small named rules. All of them run, then one go/no-go.

Each rule takes the CheckContext and yields Findings (error or warning) that name the file and,
when known, the line. Errors block sending; warnings are advice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from newsletter.compose.blocks import keep, parse_body
from newsletter.compose.checkrules import (
    CheckContext,
    Finding,
    Rule,
    broken_image,
    broken_link,
    compile_errors,
    front_matter,
    html_too_large,
    image_too_heavy,
    image_unreadable,
    image_without_alt,
    images_too_heavy,
    insecure_link,
    missing_translation,
    mjml_warning,
    one_line_text,
    preheader_length,
    stale_translation,
    subject_length,
    subject_unchanged,
    unknown_placeholder,
)
from newsletter.compose.compiler import compile_issue
from newsletter.compose.edition import CompiledEdition
from newsletter.compose.errors import ComposeError
from newsletter.compose.eventrules import event_end_before_start, event_in_past, event_time_zone
from newsletter.compose.slots import (
    PLACEHOLDER_RE,
    SlotTable,
    UnknownPlaceholder,
    substitute_placeholders,
)
from newsletter.compose.source import IssueSource
from newsletter.config import Settings


@dataclass(frozen=True)
class CheckReport:
    """Every finding of every rule; ok means no errors."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> int:
        return sum(f.severity == "error" for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.severity == "warning" for f in self.findings)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for `--json`."""
        return {"ok": self.ok, "errors": self.errors, "warnings": self.warnings,
                "findings": [f.__dict__ for f in self.findings]}



def _without_unknown_placeholders(body: str) -> str:
    """The body with unknown placeholders blanked (lines kept), so the other rules can run."""
    def blank(match: re.Match[str]) -> str:
        try:
            substitute_placeholders(match.group(0), SlotTable())
            return match.group(0)
        except UnknownPlaceholder:
            return "\n" * match.group(0).count("\n")
    return PLACEHOLDER_RE.sub(blank, body)


RULES: tuple[tuple[str, Rule], ...] = (
    ("front-matter", front_matter),
    ("markdown-error", unknown_placeholder),
    ("missing-translation", missing_translation),
    ("subject-unchanged", subject_unchanged),
    ("stale-translation", stale_translation),
    ("subject-length", subject_length),
    ("one-line-text", one_line_text),
    ("preheader-length", preheader_length),
    ("image-without-alt", image_without_alt),
    ("insecure-link", insecure_link),
    ("broken-link", broken_link),
    ("broken-image", broken_image),
    ("image-unreadable", image_unreadable),
    ("image-too-heavy", image_too_heavy),
    ("images-too-heavy", images_too_heavy),
    ("html-too-large", html_too_large),
    ("compile", compile_errors),
    ("mjml-warning", mjml_warning),
    ("event-in-past", event_in_past),
    ("event-end-before-start", event_end_before_start),
    ("event-time-zone", event_time_zone),
)


def prepare(source: IssueSource, settings: Settings, list_languages: Sequence[str] | None,
            now: datetime | None = None,
            compiled: Mapping[str, CompiledEdition] | None = None) -> CheckContext:
    """Parse and compile every language, keeping errors as data for the rules; a language in
    `compiled` (compiled from this source already, as send does before its checks) is taken
    from there, not compiled again."""
    ctx = CheckContext(source, settings, list_languages, now=now)
    done = compiled or {}
    for lang, edition in source.editions.items():
        shown = source.display(edition.path)
        body = _without_unknown_placeholders(edition.body)  # reported by their own rule
        try:
            ctx.docs[lang] = parse_body(body, shown, edition.body_line, keep, True)
            if lang not in source.broken:  # no sound front matter: nothing to compile
                ctx.compiled[lang] = (done[lang] if lang in done
                                      else compile_issue(source, lang, settings))
        except ComposeError as exc:
            ctx.failures[lang] = exc
    return ctx


def check_issue(source: IssueSource, settings: Settings, list_languages: Sequence[str] | None,
                now: datetime | None = None,
                compiled: Mapping[str, CompiledEdition] | None = None) -> CheckReport:
    """Run every rule on every language; the report's `ok` is the go/no-go (events are compared
    with `now`, the current time unless given; `compiled`: see prepare)."""
    ctx = prepare(source, settings, list_languages, now, compiled)
    findings = [finding for _, rule in RULES for finding in rule(ctx)]
    return CheckReport(list(dict.fromkeys(findings)))  # one problem found two ways shows once
