"""Markdown body to blocks: sections of text, image and button blocks, plus every link and image.

A thematic break (`---`) starts a new section. A paragraph holding only an image becomes an
image block (title = caption, an *emphasized* line below it = photo credit). A paragraph holding
only links marked `{.button}` becomes button blocks. A fenced block with the info string `event`
becomes an event block (compose/events.py). A line holding only `{{ statement("slug") }}`
becomes the statement's count of signatories and a button to its form, in the edition's language
(what they say comes from the `Embed` the compiler passes). Everything else stays rich text.
"""

from __future__ import annotations

import re
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
from newsletter.errors import NewsletterError

PARSER = make_parser()
BREAKS = ("softbreak", "hardbreak")
STATEMENT_RE = re.compile(
    r"""\{\{\s*statement\(\s*(?:"(?P<dq>[^"{}]*)"|'(?P<sq>[^'{}]*)')\s*\)\s*\}\}""")
STATEMENT_MARK_RE = re.compile(r"qxstatement(\d+)xq")


@dataclass(frozen=True)
class Embedded:
    """What a statement placeholder shows: its count of signatories ("" when unknown) and its
    form's button (no `url` once it is closed: `label` then says so)."""

    count: str
    label: str
    url: str


# The slug of a statement -> what its placeholder shows (NewsletterError for a wrong slug).
Embed = Callable[[str], Embedded]


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


def substitute(body: str, table: SlotTable, shown: str, body_line: int,
               statements: list[tuple[str, int]] | None = None) -> str:
    """Replace slot placeholders by sentinels and statement placeholders by marks (their slug
    and line added to `statements`), naming the line of an unknown placeholder."""
    found = [] if statements is None else statements

    def mark(match: re.Match[str]) -> str:
        line = body_line + body.count("\n", 0, match.start())
        found.append((match.group("dq") or match.group("sq") or "", line))
        return f"qxstatement{len(found) - 1}xq"

    try:
        return _substitute(STATEMENT_RE.sub(mark, body), table)
    except UnknownPlaceholder as exc:
        line = body_line + body.count("\n", 0, exc.offset)
        raise ComposeError(
            f"unknown placeholder {exc.text}: use {{{{ name }}}}, {{{{ attr.KEY }}}}, "
            "{{ unsubscribe_url }}, {{ preferences_url }}, {{ web_url }} or "
            '{{ statement("SLUG") }}',
            shown, line,
        ) from None


def _statement_blocks(slug: str, line: int, embed: Embed, shown: str,
                      env: dict[str, Any], clean: bool) -> list[Block]:
    """The count of signatories (bold) and the button to the form."""
    try:
        shows = embed(slug)
    except NewsletterError as exc:
        raise ComposeError(f'{{{{ statement("{slug}") }}}}: {exc}', shown, line,
                           rule="statement") from None
    words = [f"**{shows.count}**"] if shows.count else []
    if not shows.url:  # closed: the note instead of a button
        words.append(shows.label)
    tokens = PARSER.parse("\n\n".join(words), env)
    text = [Block(kind="text", line=line, html=render_html(PARSER, tokens, env, clean),
                  tokens=tokens)] if words else []
    if not shows.url:
        return text
    return [*text, Block(kind="button", line=line, href=shows.url, label=shows.label)]


def _no_stray_statements(sections: list[list[Block]], notes: Block | None,
                         statements: list[tuple[str, int]], shown: str) -> None:
    """A statement placeholder inside a sentence cannot become a button: say where it is."""
    texts = [b.html for s in sections for b in s if b.kind == "text"]
    for html in [*texts, notes.html if notes else ""]:
        if found := STATEMENT_MARK_RE.search(html):
            slug, line = statements[int(found.group(1))]
            raise ComposeError(f'put {{{{ statement("{slug}") }}}} on a line of its own',
                               shown, line, rule="statement")


def parse_body(
    body: str, shown: str, body_line: int, resolve: Resolver, clean: bool,
    table: SlotTable | None = None, embed: Embed | None = None,
) -> Document:
    """Parse an edition's Markdown into sections of blocks (lines are 1-based file lines).
    Without `embed`, a statement placeholder shows nothing (the checks' parse)."""
    table = table or SlotTable()
    statements: list[tuple[str, int]] = []
    text = substitute(body, table, shown, body_line, statements)
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
        elif token.type == "paragraph_open" and token.level == 0 and (
                mark := STATEMENT_MARK_RE.fullmatch(tokens[index + 1].content.strip())):
            flush()
            slug, at = statements[int(mark.group(1))]
            if embed is not None:
                sections[-1].extend(_statement_blocks(slug, at, embed, shown, env, clean))
            index += 3
            continue
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
    _no_stray_statements(sections, notes, statements, shown)
    sections = [s for s in sections if s] or [[]]
    return Document(sections=sections, notes=notes, refs=refs, slots=table, env=env)


