"""Compile one language of an issue: Markdown -> blocks -> Jinja2 MJML -> HTML shell + text shell.

This runs once per issue and language. What is left per recipient is CompiledEdition.fill().
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mjml import mjml2html

from newsletter import links
from newsletter.compose.blocks import Block, Document, parse_body, relative_file
from newsletter.compose.edition import CompiledEdition
from newsletter.compose.errors import ComposeError
from newsletter.compose.events import Event, card, uid
from newsletter.compose.layout import environment, render
from newsletter.compose.slots import Shell, Slots, SlotSpec, SlotTable, resolve_values
from newsletter.compose.source import EditionSource, IssueSource
from newsletter.compose.text import TextWriter, underline, wrap
from newsletter.config import Settings
from newsletter.i18n import translations
from newsletter.images import hashed_name
from newsletter.links import issue_url
from newsletter.localized import format_day, pick
from newsletter.typography import typeset_html, typeset_text

TEXT_TEMPLATE = "email/text.txt.j2"
RTL = ("ar", "he", "fa", "ur", "yi", "ps")


class SlotRefs:
    """What templates see as `slots`: each attribute is the sentinel for that slot."""

    def __init__(self, table: SlotTable) -> None:
        self._table = table
        self.name = table.sentinel("name")
        self.unsubscribe_url = table.sentinel("unsubscribe_url")
        self.preferences_url = table.sentinel("preferences_url")
        self.web_url = table.sentinel("web_url")

    def attr(self, key: str, default: str = "") -> str:
        """The sentinel for a subscriber attribute."""
        return self._table.sentinel(f"attr.{key}", default)


def _social(items: list[Any], language: str, default: str) -> list[dict[str, str]]:
    out = []
    for item in items:
        if isinstance(item, dict) and item.get("url"):
            label = item.get("name")
            label = pick(label, language, default) if isinstance(label, dict) else label
            out.append({"name": str(label or item["url"]), "url": str(item["url"])})
        elif isinstance(item, str) and item:
            host = urlsplit(item).hostname or item
            name = host.removeprefix("www.").split(".")[0].capitalize()
            out.append({"name": name, "url": item})
    return out


def _issue_label(gettext: Any, volume: str, number: str) -> str:
    if volume and number:
        return gettext("Vol. %(volume)s, No. %(number)s") % {"volume": volume, "number": number}
    if number:
        return gettext("No. %(number)s") % {"number": number}
    if volume:
        return gettext("Vol. %(volume)s") % {"volume": volume}
    return ""


def _place_events(doc: Document, source: IssueSource, edition: EditionSource,
                  settings: Settings, gettext: Any) -> tuple[Event, ...]:
    """Give each event block its UID, its calendar URL and its card in the edition's language."""
    placed = []
    for block in (b for s in doc.sections for b in s):
        if block.event is None:
            continue
        key = block.event.key
        event = replace(block.event, uid=uid(source.slug, key, links.archive_base_url(settings)),
                        calendar_url=links.event_calendar_url(
                            settings, edition.language, edition.date.year, source.slug, key))
        block.event = event
        block.card = card(event, edition.language, settings.languages, gettext)
        placed.append(event)
    return tuple(placed)


def _context(
    source: IssueSource, edition: EditionSource, settings: Settings, doc: Document, web_url: str,
) -> dict[str, Any]:
    lang = edition.language
    catalog = translations(lang, "email")
    conf = settings.newsletter
    base_url = conf.base_url

    def text(key: str) -> str:
        return settings.text("newsletter", key, lang)

    return {
        "lang": lang,
        "dir": "rtl" if lang.split("-")[0] in RTL else "ltr",
        "slug": source.slug,
        "list_slug": source.list_slug,
        "title": edition.title,
        "subject": edition.subject,
        "preheader": edition.preheader,
        "date": edition.date.isoformat(),
        "date_text": format_day(edition.date, lang, settings.languages),
        "volume": edition.volume,
        "number": edition.number,
        "issue_label": _issue_label(catalog.gettext, edition.volume, edition.number),
        "newsletter": {
            "name": text("name"), "organisation": text("organisation"),
            "postal_address": text("postal_address"), "masthead": text("masthead"),
            "logo_url": conf.logo_url, "base_url": base_url,
            "social_links": _social(conf.social_links, lang, conf.default_language),
        },
        "sections": doc.sections,
        "notes": doc.notes,
        "slots": SlotRefs(doc.slots),
        "web_version": False,
        "web_url": web_url,
        "subscribe_url": links.subscribe_url(base_url, source.list_slug),
        "manage_url": links.manage_url(base_url),
        "_": catalog.gettext,
        "gettext": catalog.gettext,
        "ngettext": catalog.ngettext,
    }


# mjml-python rejects a run of spaces between two MJML tags unless it starts with a newline.
MJML_GAP_RE = re.compile(r">[ \t]+(?=</?mj-)")
# mj-preview becomes a hidden <div> at the top of <body> whose text is white: SpamAssassin
# (HTML_FONT_LOW_CONTRAST) reads any text coloured like its background as a trick, hidden or
# not. Hiding it by display and size alone, with no colour, scores nothing.
PREVIEW_RE = re.compile(r'(<body\b[^>]*>\s*<div style=")display:none;[^"]*(">)')
PREVIEW_STYLE = "display:none;max-height:0;max-width:0;overflow:hidden;mso-hide:all;"


def _hide_preview(page: str) -> str:
    """Restyle MJML's preheader <div> so it is hidden without a text colour."""
    return PREVIEW_RE.sub(rf"\g<1>{PREVIEW_STYLE}\g<2>", page, count=1)


def _mjml_to_html(mjml: str, doc: Document, shown: str, template: str) -> str:
    mjml = MJML_GAP_RE.sub(">\n", mjml)
    try:
        page = mjml2html(mjml, disable_comments=True, fonts={})
    except (ValueError, RuntimeError) as exc:
        blamed = _blame_block(doc)
        if blamed:
            raise ComposeError(f"this part cannot become email markup ({exc}); check its HTML",
                               shown, blamed.line) from None
        raise ComposeError(f"the layout does not produce valid MJML: {exc}{_near(mjml, exc)}",
                           template, rule="template-error") from None
    return _hide_preview(page)


def _near(mjml: str, exc: Exception) -> str:
    """Quote the rendered MJML where the parser stopped, so the layout's author can find it."""
    found = re.search(r"position (\d+)", str(exc))
    if not found:
        return ""
    at = int(found.group(1))
    line = mjml.count("\n", 0, at) + 1
    return f" (rendered line {line}, near {mjml[max(0, at - 40):at + 20]!r})"


def _renders(fragment: str) -> bool:
    probe = ("<mjml><mj-body><mj-section><mj-column><mj-text>" + fragment
             + "</mj-text></mj-column></mj-section></mj-body></mjml>")
    try:
        mjml2html(probe, fonts={})
    except (ValueError, RuntimeError):
        return False
    return True


def _blame_block(doc: Document) -> Block | None:
    """The text block (narrowed to its raw HTML line when possible) that MJML cannot parse."""
    blocks = [b for s in doc.sections for b in s if b.kind == "text"]
    blocks += [doc.notes] if doc.notes else []
    for block in blocks:
        if _renders(block.html):
            continue
        offset = block.line - (next((t.map[0] for t in block.tokens if t.map), 0))
        for token in block.tokens:
            if token.map and token.type in ("html_block", "inline") and "<" in token.content \
                    and not _renders(token.content):
                return Block(kind="text", line=offset + token.map[0])
        return block
    return None


class AssetResolver:
    """Where files beside the issue are served from.

    In the email they point at the archive page, under the content-hashed name the archive
    builder gives them (newsletter.archive.assets.hashed_name); in web_html they stay relative,
    so the archive can find, hash and copy them. The preview passes a base of its own ("").
    """

    def __init__(self, folder: Path, web_url: str, override: str | None) -> None:
        self.folder, self.web_url, self.override = folder, web_url, override
        self.files: list[str] = []
        self.absolute: dict[str, str] = {}

    def __call__(self, url: str) -> str:
        name = relative_file(url)
        path = self.folder / name
        exists = path.is_file() and path.resolve().is_relative_to(self.folder.resolve())
        if exists and name not in self.files:
            self.files.append(name)
        if self.override is not None:
            return self.override + url.removeprefix("./")
        target = self.web_url + (hashed_name(url, path.read_bytes()) if exists
                                 else url.removeprefix("./"))
        self.absolute[url] = target
        return target

    def relativize(self, html_text: str) -> str:
        """Put the relative references back in the web version."""
        for url, target in self.absolute.items():
            html_text = html_text.replace(html.escape(target), html.escape(url))
        return html_text


def _public_slots(settings: Settings, web_url: str) -> Slots:
    manage = links.manage_url(settings.newsletter.base_url)
    return Slots(name="", unsubscribe_url=manage, preferences_url=manage, web_url=web_url)


def _render_text(source: IssueSource, doc: Document, context: dict[str, Any],
                 requested: tuple[str, int | None]) -> str:
    """The text part: the body written from the Markdown, inside the text layout."""
    writer = TextWriter(context["gettext"])
    body = writer.document(doc)
    env = environment(source.workspace, source.path, autoescape=False)
    env.filters.setdefault("underline", underline)
    env.filters.setdefault("wrap", wrap)
    extra = {"body": body, "links": writer.links.urls, "labelled": writer.labelled}
    return render(env, TEXT_TEMPLATE, {**context, **extra}, source.workspace, requested)


def compile_issue(
    source: IssueSource, language: str, settings: Settings, *, asset_base_url: str | None = None,
) -> CompiledEdition:
    """Compile one language once; raise ComposeError naming file and line on any problem.

    Relative images and links resolve against the issue's archive page (its "view in browser"
    URL) unless `asset_base_url` is given (the preview uses "" to keep them relative).
    """
    edition = source.editions.get(language)
    if edition is None:
        raise ComposeError(f"no {language}.md in issues/{source.slug}/",
                           source.display(source.path))
    shown = source.display(edition.path)
    web_url = issue_url(settings, language, edition.date.year, source.slug)
    resolver = AssetResolver(source.path, web_url, asset_base_url)
    from newsletter.statements.embed import embedder  # its database code only when compiling

    counts: list[str] = []  # the statements' counts of signatories: not a change of text
    doc = parse_body(edition.body, shown, edition.body_line, resolver, not source.allow_raw_html,
                     embed=embedder(settings, language, counts))
    context = _context(source, edition, settings, doc, web_url)
    events = _place_events(doc, source, edition, settings, context["gettext"])
    env = environment(source.workspace, source.path)
    requested = (source.display(edition.origin("template")[0]), edition.origin("template")[1])
    template_name = edition.template
    email_mjml = render(env, template_name, context, source.workspace, requested)
    web_mjml = render(env, template_name, {**context, "web_version": True}, source.workspace,
                      requested)
    # The reader's typography (French spacing) on the finished words, around the slots.
    text = typeset_text(_render_text(source, doc, context, requested), language)
    html_shell = Shell(typeset_html(_mjml_to_html(email_mjml, doc, shown, template_name),
                                    language))
    # "view in browser" needs no per-recipient value: default it to this edition's page.
    specs = tuple(SlotSpec(s.key, web_url) if s.key == "web_url" and not s.default else s
                  for s in doc.slots.specs)
    web_values = resolve_values(specs, _public_slots(settings, web_url))[0]
    web_page = typeset_html(_mjml_to_html(web_mjml, doc, shown, template_name), language)
    web_html = resolver.relativize(Shell(web_page).fill(web_values))
    text_shell = Shell(text)
    shown_html = html_shell.show(doc.slots.specs)
    digest = hashlib.sha256()
    for part in (edition.subject, edition.preheader, edition.title, web_html, text):
        for words in counts:
            part = part.replace(words, "").replace(typeset_text(words, language), "")
        digest.update(part.encode("utf-8") + b"\0")
    return CompiledEdition(
        slug=source.slug, language=language, list_slug=source.list_slug,
        subject=edition.subject, title=edition.title, preheader=edition.preheader,
        date=edition.date.isoformat(), volume=edition.volume, number=edition.number,
        html_shell=shown_html, text_shell=text_shell.show(doc.slots.specs), web_html=web_html,
        content_hash=digest.hexdigest(), html_size=len(shown_html.encode("utf-8")),
        assets=tuple(resolver.files), web_url=web_url, events=events, _html=html_shell,
        _text=text_shell,
        _specs=specs,
    )
