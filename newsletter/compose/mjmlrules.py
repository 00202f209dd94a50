"""A small MJML validator: mjml-python renders without warnings, so we check templates ourselves.

It reads a template's source with the Jinja tags blanked out (lines keep their numbers) and
reports unknown mj-* tags, tags placed where MJML ignores them, unclosed tags and mj-image
without alt. Inside mj-text, mj-button, mj-table and mj-raw the content is HTML and is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

JINJA_RE = re.compile(r"\{%.*?%\}|\{\{.*?\}\}|\{#.*?#\}", re.S)
CONTENT = ("mj-text", "mj-button", "mj-table", "mj-raw", "mj-style", "mj-title", "mj-preview",
           "mj-navbar-link", "mj-accordion-title", "mj-accordion-text", "mj-social-element")
BODY_CONTENT = {"mj-text", "mj-image", "mj-button", "mj-divider", "mj-spacer", "mj-social",
                "mj-table", "mj-raw", "mj-accordion", "mj-carousel", "mj-navbar", "mj-include"}
CHILDREN: dict[str, set[str]] = {
    "mjml": {"mj-head", "mj-body", "mj-include"},
    "mj-head": {"mj-attributes", "mj-breakpoint", "mj-font", "mj-html-attributes", "mj-preview",
                "mj-style", "mj-title", "mj-raw", "mj-include"},
    "mj-body": {"mj-section", "mj-wrapper", "mj-hero", "mj-raw", "mj-include"},
    "mj-wrapper": {"mj-section", "mj-hero", "mj-raw", "mj-include"},
    "mj-section": {"mj-column", "mj-group", "mj-raw", "mj-include"},
    "mj-group": {"mj-column", "mj-raw"},
    "mj-column": BODY_CONTENT,
    "mj-hero": BODY_CONTENT,
    "mj-social": {"mj-social-element", "mj-raw"},
    "mj-navbar": {"mj-navbar-link", "mj-raw"},
    "mj-accordion": {"mj-accordion-element", "mj-raw"},
    "mj-accordion-element": {"mj-accordion-title", "mj-accordion-text", "mj-raw"},
    "mj-carousel": {"mj-carousel-image", "mj-raw"},
}
KNOWN = set(CHILDREN) | set(CONTENT) | BODY_CONTENT | {
    "mj-attributes", "mj-breakpoint", "mj-font", "mj-html-attributes", "mj-all", "mj-class",
    "mj-carousel-image", "mj-accordion-element", "mj-selector", "mj-html-attribute",
}
VOID = {"mj-image", "mj-divider", "mj-spacer", "mj-all", "mj-breakpoint", "mj-font",
        "mj-class", "mj-carousel-image", "mj-include"}


@dataclass(frozen=True)
class MjmlWarning:
    """One problem in MJML source, with its 1-based line."""

    line: int
    message: str


def blank_jinja(source: str) -> str:
    """Replace Jinja tags by spaces, keeping newlines so line numbers stay true."""
    return JINJA_RE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)


class _Validator(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, int]] = []
        self.found: list[MjmlWarning] = []

    def _in_content(self) -> bool:
        return any(tag in CONTENT for tag, _ in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line = self.getpos()[0]
        if not tag.startswith("mj") or self._in_content():
            return
        if tag not in KNOWN:
            self.found.append(MjmlWarning(line, f"unknown MJML tag <{tag}>"))
        parent = next((t for t, _ in reversed(self.stack) if t.startswith("mj")), None)
        if parent in CHILDREN and tag not in CHILDREN[parent] and parent != "mj-attributes":
            self.found.append(MjmlWarning(line, f"<{tag}> is not allowed inside <{parent}>"))
        if tag == "mj-image" and "alt" not in dict(attrs) and parent != "mj-attributes":
            self.found.append(MjmlWarning(line, "<mj-image> without alt attribute"))
        if tag not in VOID:
            self.stack.append((tag, line))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        before = len(self.stack)
        self.handle_starttag(tag, attrs)
        if len(self.stack) > before:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if not tag.startswith("mj"):
            return
        if self._in_content() and tag not in CONTENT:
            return
        if not any(t == tag for t, _ in self.stack):
            self.found.append(MjmlWarning(self.getpos()[0], f"</{tag}> closes nothing"))
            return
        while self.stack:
            open_tag, line = self.stack.pop()
            if open_tag == tag:
                break
            self.found.append(MjmlWarning(line, f"<{open_tag}> is never closed"))


def validate(source: str) -> list[MjmlWarning]:
    """Warnings for one MJML template source (Jinja tags ignored)."""
    validator = _Validator()
    validator.feed(blank_jinja(source))
    validator.close()
    for tag, line in validator.stack:
        if tag in ("mjml",) or tag in CHILDREN or tag in CONTENT:
            validator.found.append(MjmlWarning(line, f"<{tag}> is never closed"))
    return validator.found
