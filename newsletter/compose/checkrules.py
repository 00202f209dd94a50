"""The named pre-send rules: each takes the CheckContext and yields Findings (error or warning)
that name the file and, when known, the line. Errors block sending; warnings are advice.

compose/checks.py prepares the context, runs the chain (its RULES) and gives the go/no-go.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from newsletter.compose.blocks import (
    Document,
    Ref,
    is_relative,
    relative_file,
    substitute,
)
from newsletter.compose.edition import CompiledEdition
from newsletter.compose.errors import ComposeError
from newsletter.compose.layout import search_path
from newsletter.compose.mjmlrules import validate
from newsletter.compose.slots import (
    PLACEHOLDER_RE,
    Slots,
    SlotTable,
)
from newsletter.compose.source import EditionSource, IssueSource, load_issue
from newsletter.compose.translations import KEY as TRANSLATED_KEY
from newsletter.compose.translations import staleness
from newsletter.config import Settings
from newsletter.images import ImageError, cache_for, is_image

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bqBQ]\?")
GMAIL_CLIP_BYTES = 102 * 1024
NEAR_CLIP_BYTES = 90 * 1024
SUBJECT_RANGE = (10, 70)
PREHEADER_RANGE = (30, 140)
IMAGE_BYTES = 200 * 1024  # one picture, after processing: slow on mobile data beyond this
EMAIL_IMAGE_BYTES = 1024 * 1024  # all the pictures of one email, after processing
# Realistic per-recipient values, so the size check measures what a subscriber receives.
SAMPLE_SLOTS = Slots(
    name="Maria Fernanda Rodríguez", unsubscribe_url="https://example.org/unsubscribe/" + "x" * 60,
    preferences_url="https://example.org/preferences/" + "x" * 60,
)


@dataclass(frozen=True)
class Finding:
    """One problem: severity ("error" | "warning"), rule name, where, and what to do."""

    severity: str
    rule: str
    file: str
    line: int | None
    message: str

    def format(self) -> str:
        """`file:line: severity rule: message`, like a compiler."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity} {self.rule}: {self.message}"


@dataclass
class CheckContext:
    """What the rules look at: the source, each language parsed and compiled (or its error)."""

    source: IssueSource
    settings: Settings
    list_languages: Sequence[str] | None
    docs: dict[str, Document] = field(default_factory=dict)
    compiled: dict[str, CompiledEdition] = field(default_factory=dict)
    failures: dict[str, ComposeError] = field(default_factory=dict)
    weights: dict[Path, int | ImageError] = field(default_factory=dict)
    now: datetime | None = None  # the clock events are compared with (tests fix it)

    def shown(self, path: Path) -> str:
        return self.source.display(path)

    def sound(self) -> Iterable[EditionSource]:
        """The editions whose front matter could be read (the others get front-matter errors)."""
        return (e for lang, e in self.source.editions.items() if lang not in self.source.broken)

    def refs(self) -> Iterable[tuple[EditionSource, Ref]]:
        for lang, doc in self.docs.items():
            for ref in doc.refs:
                yield self.source.editions[lang], ref


Rule = Callable[[CheckContext], Iterable[Finding]]


def missing_translation(ctx: CheckContext) -> Iterable[Finding]:
    """Every language the list offers has its file; no file for a language it does not offer."""
    folder = ctx.shown(ctx.source.path)
    if ctx.list_languages is None:
        yield Finding("warning", "unknown-list", folder, None,
                      f"list {ctx.source.list_slug!r} is not in the database: cannot check "
                      "that every language it offers has a translation")
        return
    for lang in ctx.list_languages:
        if lang not in ctx.source.editions:
            yield Finding("error", "missing-translation", f"{folder}/{lang}.md", None,
                          f"list {ctx.source.list_slug!r} offers {lang!r} but the issue has "
                          f"no {lang}.md")
    for lang in ctx.source.languages:
        if lang not in ctx.list_languages:
            path = ctx.shown(ctx.source.editions[lang].path)
            yield Finding("warning", "unused-translation", path, None,
                          f"list {ctx.source.list_slug!r} does not offer {lang!r}")


def _length(ctx: CheckContext, key: str, rule: str, bounds: tuple[int, int]) -> Iterable[Finding]:
    low, high = bounds
    for edition in ctx.sound():
        value = getattr(edition, key)
        path, line = edition.origin(key)
        where = ctx.shown(path)
        if not value.strip():
            severity = "error" if key == "subject" else "warning"
            yield Finding(severity, rule, where, line, f"no {key} for {edition.language}")
        elif not low <= len(value) <= high:
            yield Finding("warning", rule, where, line,
                          f"{key} is {len(value)} characters; {low} to {high} read best")
        if "{{" in value:
            yield Finding("error", rule, where, line,
                          f"placeholders are not filled in the {key}: remove {{{{ ... }}}}")


def subject_length(ctx: CheckContext) -> Iterable[Finding]:
    """Subjects that inboxes cut off, or that are empty or too short to say anything."""
    return _length(ctx, "subject", "subject-length", SUBJECT_RANGE)


def preheader_length(ctx: CheckContext) -> Iterable[Finding]:
    """Preheaders missing (the inbox then shows stray text) or out of the usual length."""
    return _length(ctx, "preheader", "preheader-length", PREHEADER_RANGE)


def one_line_text(ctx: CheckContext) -> Iterable[Finding]:
    """Subject, title and preheader are one line of text: they go into headers and the inbox.

    A line break or control character is an error (the mail would show it as a space); text
    that looks like an RFC 2047 encoded word is shown to readers literally, so it is flagged.
    """
    for edition in ctx.sound():
        for key in ("subject", "title", "preheader"):
            value = getattr(edition, key)
            path, line = edition.origin(key)
            if _CONTROL.search(value):
                yield Finding("error", "one-line-text", ctx.shown(path), line,
                              f"{key} contains a line break or control character: write it "
                              "on one line")
            if key == "subject" and _ENCODED_WORD.search(value):
                yield Finding("warning", "one-line-text", ctx.shown(path), line,
                              "subject contains text like an encoded word (=?charset?q?...?=): "
                              "readers will see it as typed, not decoded")


def image_without_alt(ctx: CheckContext) -> Iterable[Finding]:
    """Every image needs alt text, unless marked {.decorative}."""
    for edition, ref in ctx.refs():
        if ref.kind == "image" and not ref.alt.strip() and not ref.decorative:
            yield Finding("error", "image-without-alt", ctx.shown(edition.path), ref.line,
                          f"image {ref.url!r} has no alt text: describe it in ![...], or mark "
                          "it {.decorative}")


def insecure_link(ctx: CheckContext) -> Iterable[Finding]:
    """Plain http:// links and images (mixed content, and a warning sign for filters)."""
    for edition, ref in ctx.refs():
        if urlsplit(ref.url).scheme.lower() == "http":
            yield Finding("warning", "insecure-link", ctx.shown(edition.path), ref.line,
                          f"{ref.kind} uses http://: {ref.url} (use https://)")


def _missing(ctx: CheckContext, kind: str, rule: str) -> Iterable[Finding]:
    for edition, ref in ctx.refs():
        if ref.kind != kind:
            continue
        if not ref.url.strip():
            yield Finding("error", rule, ctx.shown(edition.path), ref.line, f"empty {kind} target")
        elif is_relative(ref.url):
            target = (ctx.source.path / relative_file(ref.url)).resolve()
            inside = target.is_relative_to(ctx.source.path.resolve())
            if not inside or not target.is_file():
                yield Finding("error", rule, ctx.shown(edition.path), ref.line,
                              f"{ref.url!r} is not a file in {ctx.shown(ctx.source.path)}/")


def broken_link(ctx: CheckContext) -> Iterable[Finding]:
    """Relative links must point at a file beside the issue."""
    return _missing(ctx, "link", "broken-link")


def broken_image(ctx: CheckContext) -> Iterable[Finding]:
    """Relative images must exist beside the issue."""
    return _missing(ctx, "image", "broken-image")


def _pictures(ctx: CheckContext) -> Iterable[tuple[EditionSource, Ref, Path]]:
    """Relative images that exist beside the issue (the missing ones are broken-image's)."""
    root = ctx.source.path.resolve()
    for edition, ref in ctx.refs():
        if ref.kind == "image" and ref.url.strip() and is_relative(ref.url):
            target = (root / relative_file(ref.url)).resolve()
            if target.is_relative_to(root) and target.is_file():
                yield edition, ref, target


def _weigh(ctx: CheckContext, path: Path, label: str) -> int | ImageError:
    """Bytes of the picture as published (processed once, then cached), or why it cannot be."""
    if path not in ctx.weights:
        try:
            data = path.read_bytes()
            if is_image(path.name):
                data = cache_for(ctx.source.workspace).get(data, label)
            ctx.weights[path] = len(data)
        except ImageError as exc:
            ctx.weights[path] = exc
    return ctx.weights[path]


def image_unreadable(ctx: CheckContext) -> Iterable[Finding]:
    """Pictures Pillow cannot read, that are too large to open, or in a format mail cannot show."""
    for edition, ref, path in _pictures(ctx):
        where = ctx.shown(edition.path)
        if path.suffix.lower() in (".svg", ".svgz"):
            yield Finding("warning", "image-format", where, ref.line,
                          f"{ref.url!r} is SVG, which Gmail and Outlook do not show and the "
                          "archive does not publish: export it as PNG")
        elif not is_image(path.name):
            yield Finding("error", "image-unreadable", where, ref.line,
                          f"{ref.url!r} is not a picture email clients show: save it as JPEG "
                          "or PNG")
        elif isinstance(weight := _weigh(ctx, path, ref.url), ImageError):
            yield Finding("error", "image-unreadable", where, ref.line, str(weight))


def image_too_heavy(ctx: CheckContext) -> Iterable[Finding]:
    """A picture over 200 KB after processing: slow to load on a phone."""
    for edition, ref, path in _pictures(ctx):
        weight = _weigh(ctx, path, ref.url) if is_image(path.name) else 0
        if isinstance(weight, int) and weight > IMAGE_BYTES:
            yield Finding("warning", "image-too-heavy", ctx.shown(edition.path), ref.line,
                          f"{ref.url!r} weighs {weight / 1024:.0f} KB after processing (over "
                          f"{IMAGE_BYTES // 1024} KB): crop it or pick a simpler picture")


def images_too_heavy(ctx: CheckContext) -> Iterable[Finding]:
    """All the pictures of one email over 1 MB after processing."""
    for lang, edition in ctx.source.editions.items():
        seen = {path for e, _, path in _pictures(ctx) if e.language == lang}
        weights = [_weigh(ctx, path, path.name) for path in seen if is_image(path.name)]
        total = sum(w for w in weights if isinstance(w, int))
        if total > EMAIL_IMAGE_BYTES:
            yield Finding("warning", "images-too-heavy", ctx.shown(edition.path), None,
                          f"the pictures of this email weigh {total / 1024 / 1024:.1f} MB after "
                          f"processing (over {EMAIL_IMAGE_BYTES // 1024 // 1024} MB): use fewer "
                          "or smaller pictures")


def html_too_large(ctx: CheckContext) -> Iterable[Finding]:
    """Gmail clips HTML over about 102 KB, hiding the footer and its unsubscribe link."""
    for lang, edition in ctx.compiled.items():
        size = len(edition.fill_html(SAMPLE_SLOTS).encode("utf-8"))
        where = ctx.shown(ctx.source.editions[lang].path)
        if size > GMAIL_CLIP_BYTES:
            yield Finding("error", "html-too-large", where, None,
                          f"HTML is {size / 1024:.0f} KB: Gmail clips messages over 102 KB")
        elif size > NEAR_CLIP_BYTES:
            yield Finding("warning", "html-too-large", where, None,
                          f"HTML is {size / 1024:.0f} KB, close to Gmail's 102 KB clipping")


def compile_errors(ctx: CheckContext) -> Iterable[Finding]:
    """Markdown and template errors found while compiling each language."""
    seen: set[str] = set()
    for error in ctx.failures.values():
        if str(error) not in seen:  # a broken shared template fails every language alike
            seen.add(str(error))
            yield Finding("error", error.rule, error.file or ctx.shown(ctx.source.path),
                          error.line, error.message)


def mjml_warning(ctx: CheckContext) -> Iterable[Finding]:
    """MJML tags the renderer would ignore or misplace, in the templates this issue uses."""
    effective: dict[str, Path] = {}
    for folder in search_path(ctx.source.workspace, ctx.source.path):
        for path in sorted(Path(folder).rglob("*.mjml.j2")):
            effective.setdefault(str(path.relative_to(folder)), path)
    for path in effective.values():
        try:
            problems = validate(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            problems = []
        shown = ctx.shown(path) if path.is_relative_to(ctx.source.workspace) else str(path)
        for problem in problems:
            yield Finding("warning", "mjml-warning", shown, problem.line, problem.message)


def front_matter(ctx: CheckContext) -> Iterable[Finding]:
    """Every front-matter problem of every file (issue.toml and each language's +++ block)."""
    for error in ctx.source.problems:
        yield Finding("error", "front-matter", error.file or ctx.shown(ctx.source.path),
                      error.line, error.message)


def unknown_placeholder(ctx: CheckContext) -> Iterable[Finding]:
    """Every `{{ ... }}` in a body that names no recipient slot, not just the first."""
    for edition in ctx.source.editions.values():
        shown = ctx.shown(edition.path)
        for match in PLACEHOLDER_RE.finditer(edition.body):
            line = edition.body_line + edition.body.count("\n", 0, match.start())
            try:
                substitute(match.group(0), SlotTable(), shown, line)
            except ComposeError as exc:
                yield Finding("error", exc.rule, shown, exc.line, exc.message)


def subject_unchanged(ctx: CheckContext) -> Iterable[Finding]:
    """After `issue new --from LAST`, a subject still equal to LAST's was not rewritten."""
    previous = ctx.source.settings.get("copied_from")
    if not previous:
        return
    try:
        old = load_issue(ctx.source.workspace, str(previous), keep_going=True)
    except ComposeError:
        return  # LAST was renamed or removed: nothing to compare with
    for edition in ctx.sound():
        before = old.editions.get(edition.language)
        if before is not None and edition.subject and before.subject == edition.subject:
            path, line = edition.origin("subject")
            yield Finding("warning", "subject-unchanged", ctx.shown(path), line,
                          f"the subject is still the one of {previous}: write this issue's")


def stale_translation(ctx: CheckContext) -> Iterable[Finding]:
    """Sections of the source language changed since a file was marked translated."""
    for lang in ctx.source.languages:
        found = staleness(ctx.source, lang)
        if found is None:
            continue
        path, line = ctx.source.editions[lang].origin(TRANSLATED_KEY)
        message = found if isinstance(found, str) else found.describe(lang).replace(
            "SLUG", ctx.source.slug)
        yield Finding("warning", "stale-translation", ctx.shown(path), line, message)

