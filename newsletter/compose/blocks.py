"""Markdown body to blocks: sections of text, image and button blocks, plus every link and image.

A thematic break (`---`) starts a new section. A paragraph holding only an image becomes an
image block (title = caption, an *emphasized* line below it = photo credit). A paragraph holding
only links marked `{.button}` becomes button blocks. A fenced block with the info string `event`
becomes an event block (compose/events.py). Everything else stays rich text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from markdown_it.token import Token

from newsletter.compose.errors import ComposeError
from newsletter.compose.events import Event, parse_event
from newsletter.compose.richtext import is_button, make_parser, render_html
from newsletter.compose.slots import SENTINEL_RE, SlotTable, UnknownPlaceholder
from newsletter.compose.slots import substitute_placeholders as _substitute

PARSER = make_parser()
BREAKS = ("softbreak", "hardbreak")


@dataclass(frozen=True)
class Ref:
    """A link or image as written, with its line in the source file."""

    kind: str  # "link" | "image"
    url: str
    line: int
    alt: str = ""
    decorative: bool = False


@dataclass
class Block:
    """One piece of content the layout renders: text (HTML), image, button or event."""

    kind: str
    line: int
    html: str = ""
    tokens: list[Token] = field(default_factory=list)
    src: str = ""
    alt: str = ""
    caption: str = ""
    credit: str = ""
    href: str = ""
    label: str = ""
    width: str = ""
    event: Event | None = None
    card: dict[str, str] = field(default_factory=dict)  # the event's words, per language


@dataclass
class Document:
    """An edition's body: sections of blocks, footnotes, every link and image, the slot table."""

    sections: list[list[Block]]
    notes: Block | None
    refs: list[Ref]
    slots: SlotTable
    env: dict[str, Any]


def is_relative(url: str) -> bool:
    """A link to a file beside the issue (not a scheme, an anchor or a slot)."""
    if not url or url.startswith(("#", "/", "//")) or SENTINEL_RE.search(url):
        return False
    return not urlsplit(url).scheme


Resolver = Callable[[str], str]


def keep(url: str) -> str:
    """The identity resolver: leave relative links as written."""
    return url


def relative_file(url: str) -> str:
    """The file part of a relative link (no query, no fragment, percent-decoded)."""
    return unquote(urlsplit(url).path).removeprefix("./")


def _plain(children: list[Token]) -> str:
    return "".join(c.content for c in children if c.type in ("text", "code_inline")).strip()


def _meaningful(children: list[Token]) -> list[Token]:
    return [c for c in children if not (c.type == "text" and not c.content.strip())]


def _image_block(inline: Token, line: int) -> Block | None:
    kids = _meaningful(inline.children or [])
    link = ""
    if len(kids) >= 3 and kids[0].type == "link_open" and kids[1].type == "image" \
            and kids[2].type == "link_close":
        link = str(kids[0].attrs.get("href", ""))
        kids = [kids[1], *kids[3:]]
    if not kids or kids[0].type != "image":
        return None
    image, rest = kids[0], kids[1:]
    credit = ""
    if rest:
        if rest[0].type not in BREAKS or len(rest) < 3 or rest[1].type != "em_open" \
                or rest[-1].type != "em_close":
            return None
        credit = _plain(rest[2:-1])
    return Block(
        kind="image", line=line, src=str(image.attrs.get("src", "")),
        alt=_plain(image.children or []) if image.content else "",
        caption=str(image.attrs.get("title", "")), credit=credit, href=link,
        width="".join(ch for ch in str(image.attrs.get("width", "")) if ch.isdigit()),
    )


def _button_blocks(inline: Token, line: int) -> list[Block] | None:
    kids = [c for c in _meaningful(inline.children or []) if c.type not in BREAKS]
    if not kids or not is_button(kids[0]):
        return None
    buttons: list[Block] = []
    while kids:
        if not is_button(kids[0]):
            return None
        end = next((i for i, c in enumerate(kids) if c.type == "link_close"), None)
        if end is None:
            return None
        href = str(kids[0].attrs.get("href", ""))
        buttons.append(Block(kind="button", line=line, href=href, label=_plain(kids[1:end])))
        kids = kids[end + 1 :]
    return buttons


def _collect_refs(tokens: list[Token], offset: int, refs: list[Ref], resolve: Resolver) -> None:
    for token in tokens:
        if token.type != "inline":
            continue
        line = offset + (token.map[0] if token.map else 0)
        for child in token.children or ():
            if child.type in BREAKS:
                line += 1
            elif child.type == "link_open":
                href = str(child.attrs.get("href", ""))
                refs.append(Ref("link", href, line))
                child.attrSet("href", resolve(href) if is_relative(href) else href)
            elif child.type == "image":
                src = str(child.attrs.get("src", ""))
                decorative = "decorative" in str(child.attrs.get("class", "")).split()
                refs.append(Ref("image", src, line, child.content, decorative))
                child.attrSet("src", resolve(src) if is_relative(src) else src)
                if decorative:
                    child.children = []
                    child.content = ""


def _events(sections: list[list[Block]]) -> list[Event]:
    return [b.event for s in sections for b in s if b.event is not None]


def events_of(doc: Document) -> list[Event]:
    """The document's events, in reading order."""
    return _events(doc.sections)


def substitute(body: str, table: SlotTable, shown: str, body_line: int) -> str:
    """Replace slot placeholders by sentinels, naming the line of an unknown placeholder."""
    try:
        return _substitute(body, table)
    except UnknownPlaceholder as exc:
        line = body_line + body.count("\n", 0, exc.offset)
        raise ComposeError(
            f"unknown placeholder {exc.text}: use {{{{ name }}}}, {{{{ attr.KEY }}}}, "
            "{{ unsubscribe_url }}, {{ preferences_url }} or {{ web_url }}",
            shown, line,
        ) from None


def parse_body(
    body: str, shown: str, body_line: int, resolve: Resolver, clean: bool,
    table: SlotTable | None = None,
) -> Document:
    """Parse an edition's Markdown into sections of blocks (lines are 1-based file lines)."""
    table = table or SlotTable()
    text = substitute(body, table, shown, body_line)
    env: dict[str, Any] = {}
    try:
        tokens = PARSER.parse(text, env)
    except Exception as exc:  # markdown-it rarely fails; never let it become a traceback
        raise ComposeError(f"cannot parse Markdown: {exc}", shown, body_line) from None
    refs: list[Ref] = []
    _collect_refs(tokens, body_line, refs, resolve)
    sections: list[list[Block]] = [[]]
    run: list[Token] = []
    notes: Block | None = None

    def flush() -> None:
        if run:
            line = body_line + next((t.map[0] for t in run if t.map), 0)
            html = render_html(PARSER, run, env, clean)
            sections[-1].append(Block(kind="text", line=line, html=html, tokens=list(run)))
            run.clear()

    index = 0
    while index < len(tokens):
        token = tokens[index]
        line = body_line + (token.map[0] if token.map else 0)
        if token.type == "hr" and token.level == 0:
            flush()
            sections.append([])
        elif token.type == "footnote_block_open":
            flush()
            end = next(i for i in range(index, len(tokens))
                       if tokens[i].type == "footnote_block_close")
            notes_tokens = tokens[index : end + 1]
            html = render_html(PARSER, notes_tokens, env, clean)
            notes = Block(kind="text", line=line, html=html, tokens=notes_tokens)
            index = end
        elif token.type == "fence" and token.info.strip() == "event":
            flush()
            event = parse_event(token.content, shown, line + 1, len(_events(sections)) + 1)
            sections[-1].append(Block(kind="event", line=line, event=event))
            if event.link:
                refs.append(Ref("link", event.link, line))
        elif token.type == "paragraph_open" and token.level == 0:
            inline = tokens[index + 1]
            special = _button_blocks(inline, line) or (
                [b] if (b := _image_block(inline, line)) else None
            )
            if special:
                flush()
                sections[-1].extend(special)
                index += 3
                continue
            run.append(token)
        else:
            run.append(token)
        index += 1
    flush()
    sections = [s for s in sections if s] or [[]]
    return Document(sections=sections, notes=notes, refs=refs, slots=table, env=env)


