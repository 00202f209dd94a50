"""Markdown text to email-safe HTML: inline styles on every element, raw HTML sanitized by nh3.

Email clients drop or ignore much of a <style> sheet, and mjml-python does not inline CSS, so
the styles travel on the tags themselves. Footnotes render as plain numbered notes, because
in-message anchors do not work in most mail clients.
"""

from __future__ import annotations

import html as html_entities
import re
from collections.abc import Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.attrs import attrs_plugin
from mdit_py_plugins.footnote import footnote_plugin

LINK_COLOR = "#0b5cad"
STYLES: dict[str, str] = {
    "h1": "font-size:26px;line-height:1.25;margin:0 0 12px;font-weight:bold;",
    "h2": "font-size:21px;line-height:1.3;margin:18px 0 10px;font-weight:bold;",
    "h3": "font-size:17px;line-height:1.35;margin:16px 0 8px;font-weight:bold;",
    "h4": "font-size:15px;line-height:1.4;margin:14px 0 6px;font-weight:bold;",
    "h5": "font-size:15px;line-height:1.4;margin:14px 0 6px;font-weight:bold;",
    "h6": "font-size:15px;line-height:1.4;margin:14px 0 6px;font-weight:bold;",
    "p": "margin:0 0 14px;overflow-wrap:anywhere;",
    "ul": "margin:0 0 14px;padding:0 0 0 24px;",
    "ol": "margin:0 0 14px;padding:0 0 0 24px;",
    "li": "margin:0 0 6px;",
    "blockquote": "margin:0 0 14px;padding:2px 0 2px 14px;border-left:4px solid #c9d3dd;",
    # Column widths follow the content (a date column stays narrow), words wrap whole (MJML
    # columns set word-break:break-word, which would cut them); on a phone the head.mjml.j2
    # .nl-table rules stack each row, its header above each value.
    "table": "border-collapse:collapse;width:100%;margin:0 0 14px;font-size:14px;",
    "th": "border:1px solid #c9d3dd;padding:6px 8px;text-align:left;font-weight:bold;"
    "word-break:normal;overflow-wrap:break-word;hyphens:auto;",
    "td": "border:1px solid #c9d3dd;padding:6px 8px;text-align:left;vertical-align:top;"
    "word-break:normal;overflow-wrap:break-word;hyphens:auto;",
    "pre": "margin:0 0 14px;padding:10px;white-space:pre-wrap;overflow-wrap:anywhere;"
    "word-break:break-all;"
    "font-family:Menlo,Consolas,monospace;font-size:13px;background:#f2f4f7;color:#1d2733;",
    "code": "font-family:Menlo,Consolas,monospace;font-size:90%;",
    "hr": "border:0;border-top:1px solid #c9d3dd;margin:18px 0;",
    "a": f"color:{LINK_COLOR};text-decoration:underline;",
    "img": "max-width:100%;height:auto;border:0;",
}
BUTTON_STYLE = (
    f"display:inline-block;padding:8px 16px;border-radius:4px;background:{LINK_COLOR};"
    "color:#ffffff;text-decoration:none;font-weight:bold;"
)
NOTES_OPEN = (
    '<div style="border-top:1px solid #c9d3dd;margin:8px 0 0;padding:8px 0 0;font-size:13px;">'
    '<ol style="margin:0;padding:0 0 0 22px;">'
)
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "del", "div", "em", "h1",
    "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre",
    "q", "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "u", "ul",
}
ALLOWED_ATTRIBUTES = {
    "*": {"style", "class", "title", "dir", "lang"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"align", "colspan", "rowspan", "data-label"},
    "th": {"align", "colspan", "rowspan", "scope"},
    "ol": {"start"},
}


_STYLE_ATTRIBUTE = re.compile(r'\sstyle="([^"]*)"')
# CSS that runs code or loads a binding in some client (old IE, old Firefox), or hides such
# text from a simple check (escapes, comments): the whole style attribute goes.
_UNSAFE_CSS = re.compile(r"expression|javascript:|vbscript:|-moz-binding|behavior|@import|\\|/\*",
                         re.IGNORECASE)


def _footnote_ref(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    number = int(tokens[idx].meta["id"]) + 1
    return f'<sup style="font-size:75%;line-height:0;">[{number}]</sup>'


def _fixed(html: str):  # noqa: ANN202 - markdown-it render rule signature
    def rule(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
        return html

    return rule


def make_parser() -> MarkdownIt:
    """CommonMark + tables + footnotes + {attrs}, with email-friendly footnote output."""
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    md.use(footnote_plugin).use(attrs_plugin)
    rules = {
        "footnote_ref": _footnote_ref,
        "footnote_block_open": _fixed(NOTES_OPEN),
        "footnote_block_close": _fixed("</ol></div>\n"),
        "footnote_open": _fixed('<li style="margin:0 0 4px;">'),
        "footnote_close": _fixed("</li>\n"),
        "footnote_anchor": _fixed(""),
    }
    for name, rule in rules.items():
        md.add_render_rule(name, rule)
    return md


def is_button(token: Token) -> bool:
    """A link marked {.button} is a call to action."""
    return token.type == "link_open" and "button" in str(token.attrs.get("class", "")).split()


def _style(token: Token) -> None:
    if token.nesting == -1:
        return
    style = BUTTON_STYLE if is_button(token) else STYLES.get(token.tag)
    if style:
        existing = str(token.attrs.get("style", ""))
        token.attrSet("style", style + existing)


# What a column needs at least, in px of the 14 px table text: its longest word plus padding.
CHAR_PX, CELL_PX, TABLE_PX = 8, 18, 552  # 552: the 600 px email less its side padding


def label_cells(tokens: Sequence[Token]) -> None:
    """Mark tables `nl-table` and give each body cell its column's header as `data-label`,
    which a phone shows above the value when it stacks the rows. A table whose longest words
    cannot sit side by side even at 600 px is marked `nl-table-stacked`: stacked everywhere."""
    table: Token | None = None
    headers: list[str] = []
    longest: dict[int, int] = {}
    column = 0
    for index, token in enumerate(tokens):
        if token.type == "table_open":
            table, headers, longest = token, [], {}
        elif token.type in ("th_open", "td_open"):
            text = _plain(tokens[index + 1])
            words = text.split() or [""]
            longest[column] = max(longest.get(column, 0), *(len(w) for w in words))
            if token.type == "th_open":
                headers.append(text)
            elif column < len(headers) and headers[column]:
                token.attrSet("data-label", headers[column])
            column += 1
        elif token.type == "tr_open":
            column = 0
        elif token.type == "table_close" and table is not None:
            need = sum(CHAR_PX * n + CELL_PX for n in longest.values())
            marks = ["nl-table"] + (["nl-table-stacked"] if need > TABLE_PX else [])
            table.attrSet("class", " ".join([str(table.attrGet("class") or ""), *marks]).strip())


def _plain(token: Token) -> str:
    """The visible text of an inline token (a header cell)."""
    if token.type != "inline":
        return ""
    parts = [c.content for c in token.children or () if c.type in ("text", "code_inline")]
    return "".join(parts).strip()


def style_tokens(tokens: Sequence[Token]) -> None:
    """Put the inline styles on each element (block and inline tokens)."""
    label_cells(tokens)
    for token in tokens:
        _style(token)
        for child in token.children or ():
            _style(child)


def render_html(md: MarkdownIt, tokens: Sequence[Token], env: dict[str, Any], clean: bool) -> str:
    """Render a run of block tokens; sanitize unless the issue allows raw HTML."""
    style_tokens(tokens)
    html = md.renderer.render(list(tokens), md.options, env)
    # Fences render <pre><code> from one token, whose style lands on <code>: style <pre> too.
    html = html.replace("<pre><code", f'<pre style="{STYLES["pre"]}"><code')
    return sanitize(html) if clean else html


def sanitize(html: str) -> str:
    """Keep formatting tags and styles; drop scripts, event handlers and unknown tags."""
    cleaned = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel=None,
        strip_comments=True,
    )
    return _STYLE_ATTRIBUTE.sub(_safe_style, cleaned) if "style=" in cleaned else cleaned


def _safe_style(match: re.Match[str]) -> str:
    # nh3 writes every attribute double-quoted with entities, so the regex sees whole values.
    css = re.sub(r"\s+", "", html_entities.unescape(match.group(1)))
    return "" if _UNSAFE_CSS.search(css) else match.group(0)
