"""The plain-text part, written from the Markdown token tree (never scraped from HTML).

Headings are underlined, lists keep their markers with hanging indents, links become numbered
references listed at the end, and lines wrap at 78 columns where words allow it.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Callable, Iterable

from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode

from newsletter.compose.blocks import Block, Document

WIDTH = 78
SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
TAG_RE = re.compile(r"<[^>]*>")
SECTION_BREAK = "* * *"
NBSP = "\u00a0"
# Keep French-style spaced punctuation and guillemets on the word they belong to.
GLUE_RE = re.compile(r" (?=[:;!?»])|(?<=«) ")


class LinkRefs:
    """Numbered link references, one number per distinct URL."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def add(self, url: str) -> int:
        """The reference number of a URL, adding it on first use."""
        if url not in self.urls:
            self.urls.append(url)
        return self.urls.index(url) + 1


def wrap(text: str, width: int = WIDTH, first: str = "", rest: str = "") -> str:
    """Wrap each hard line at `width`, never breaking words or URLs."""
    out: list[str] = []
    for number, line in enumerate(text.split("\n")):
        lead = first if number == 0 else rest
        line = GLUE_RE.sub(NBSP, line)
        wrapper = textwrap.TextWrapper(
            width=width, initial_indent=lead, subsequent_indent=rest,
            break_long_words=False, break_on_hyphens=False,
        )
        out.append(wrapper.fill(line) if line.strip() else lead.rstrip())
    return "\n".join(out)


def underline(text: str, char: str) -> str:
    """A heading: wrapped text with a rule as long as its longest line."""
    wrapped = wrap(text)
    return wrapped + "\n" + char * max(len(x) for x in wrapped.split("\n"))


def _strip_tags(text: str) -> str:
    return html.unescape(TAG_RE.sub("", text))


class TextWriter:
    """Turns a Document into plain text, collecting link references as it goes."""

    def __init__(self, gettext: Callable[[str], str] = str) -> None:
        self.links = LinkRefs()
        self.gettext = gettext

    def labelled(self, label: str, value: str) -> str:
        """`Label: value` with the language's punctuation ("Label : value" in French)."""
        return self.gettext("%(label)s: %(value)s") % {"label": label, "value": value}

    def inline(self, token: Token) -> str:
        """Inline content as text, with [n] after each link."""
        out: list[str] = []
        stack: list[tuple[str, int]] = []
        for child in token.children or ():
            kind = child.type
            if kind in ("text", "code_inline"):
                out.append(child.content)
            elif kind == "softbreak":
                out.append(" ")
            elif kind == "hardbreak":
                out.append("\n")
            elif kind == "link_open":
                stack.append((str(child.attrs.get("href", "")), len(out)))
            elif kind == "link_close" and stack:
                href, start = stack.pop()
                label = "".join(out[start:]).strip()
                if href and not href.startswith("#") and label not in (
                    href, href.removeprefix("mailto:")
                ):
                    out.append(f"{NBSP}[{self.links.add(href)}]")
            elif kind == "image" and child.content:
                out.append(f"[{child.content}]")
            elif kind == "footnote_ref":
                out.append(str(int(child.meta["id"]) + 1).translate(SUPERSCRIPT))
            elif kind == "html_inline" and re.match(r"<br\s*/?>", child.content, re.I):
                out.append("\n")
        return "".join(out).strip()

    def nodes(self, nodes: Iterable[SyntaxTreeNode], width: int) -> list[str]:
        """Render block nodes into paragraphs (each possibly several lines)."""
        out: list[str] = []
        for node in nodes:
            out.extend(self.node(node, width))
        return [p for p in out if p.strip()]

    def node(self, node: SyntaxTreeNode, width: int) -> list[str]:
        kind = node.type
        if kind == "paragraph":
            return [wrap(self.inline(node.children[0].token), width)]  # type: ignore[arg-type]
        if kind == "heading":
            text = self.inline(node.children[0].token)  # type: ignore[arg-type]
            level = int(node.tag[1])
            if level > 2:
                return [wrap(text, width)]
            return [underline(text, "=" if level == 1 else "-")]
        if kind in ("bullet_list", "ordered_list"):
            return [self.bullets(node, width)]
        if kind == "blockquote":
            inner = "\n\n".join(self.nodes(node.children, width - 2))
            return ["\n".join(("> " + line).rstrip() for line in inner.split("\n"))]
        if kind in ("fence", "code_block"):
            code = node.content.rstrip("\n")
            return ["\n".join("    " + line for line in code.split("\n"))]
        if kind == "html_block":
            return [wrap(_strip_tags(node.content).strip(), width)]
        if kind == "table":
            return [self.table(node, width)]
        if kind == "hr":
            return [SECTION_BREAK]
        if kind == "footnote_block":
            notes = []
            for number, note in enumerate(node.children, start=1):
                mark = str(number).translate(SUPERSCRIPT) + " "
                body = "\n\n".join(self.nodes(note.children, width - len(mark)))
                notes.append(_indent(body, mark))
            return ["\n".join(notes)]
        return self.nodes(node.children, width)

    def bullets(self, node: SyntaxTreeNode, width: int) -> str:
        """A list with its markers and hanging indents; nested lists indent further."""
        ordered = node.type == "ordered_list"
        start = int(node.attrs.get("start", 1)) if ordered else 1
        items = []
        for offset, item in enumerate(node.children):
            mark = f"{start + offset}. " if ordered else "- "
            body = "\n".join(self.nodes(item.children, width - len(mark)))
            items.append(_indent(body, mark))
        return "\n".join(items)

    def table(self, node: SyntaxTreeNode, width: int) -> str:
        """Aligned columns when they fit, else one `Header: value` line per cell."""
        rows = [
            [self.inline(cell.children[0].token) if cell.children else ""  # type: ignore[arg-type]
             for cell in row.children]
            for part in node.children for row in part.children
        ]
        if not rows:
            return ""
        columns = max(len(r) for r in rows)
        rows = [r + [""] * (columns - len(r)) for r in rows]
        widths = [max(len(r[i]) for r in rows) for i in range(columns)]
        if sum(widths) + 2 * (columns - 1) <= width:
            lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows]
            lines.insert(1, "  ".join("-" * w for w in widths))
            return "\n".join(lines)
        header, records = rows[0], rows[1:]
        return "\n\n".join(
            "\n".join(wrap(f"{h}: {c}", width, rest="  ") for h, c in zip(header, r, strict=True))
            for r in records
        )

    def block(self, block: Block) -> list[str]:
        """One layout block as text paragraphs."""
        if block.kind == "text":
            return self.nodes(SyntaxTreeNode(block.tokens).children, WIDTH)
        if block.kind == "image":
            lines = [wrap(f"[{block.alt}]")] if block.alt else []
            note = " — ".join(x for x in (block.caption, block.credit) if x)
            if note:
                lines.append(wrap(note))
            return ["\n".join(lines)] if lines else []
        if block.kind == "button":
            return [wrap("» " + self.labelled(block.label, block.href))]
        if block.kind == "event":
            return [self.event(block.card)]
        return []

    def event(self, card: dict[str, str]) -> str:
        """An event: its title, when and where, then its links."""
        lines = [wrap(card[k]) for k in ("title", "when", "where", "description") if card[k]]
        if card["link"]:
            lines.append(wrap("» " + self.labelled(card["link_label"], card["link"])))
        lines.append(wrap("» " + self.labelled(card["calendar_label"], card["calendar_url"])))
        return "\n".join(lines)

    def document(self, doc: Document) -> str:
        """The whole body: sections separated by a break, then the footnotes."""
        sections = []
        for section in doc.sections:
            paragraphs = [p for b in section for p in self.block(b)]
            if paragraphs:
                sections.append("\n\n".join(paragraphs))
        if doc.notes:
            sections.append("\n\n".join(self.block(doc.notes)))
        return f"\n\n{SECTION_BREAK}\n\n".join(sections)


def _indent(body: str, mark: str) -> str:
    pad = " " * len(mark)
    lines = body.split("\n")
    return "\n".join([mark + lines[0]] + [(pad + line).rstrip() for line in lines[1:]])
