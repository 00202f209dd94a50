"""Page and system-mail rendering: one autoescaping Jinja2 environment, one translator per language.

Templates call `_("English text", name=value)`; the translated text is formatted with %-style
named placeholders and then escaped like any other value, so a translation cannot inject markup.
Each language has its own environment whose loader writes the constant `{{ _("text") }}` calls
into the template source once, already translated and escaped, so a page request only fills in
the subscriber's own values (those calls were half of a page's rendering time). Pages go one
step further: their environment, per language and site, also writes in the site's name and the
`{% for code in languages %}` loops (language names) and `{{ lang }}`, which every page would
otherwise escape again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    select_autoescape,
)
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from newsletter.i18n import LANGUAGES, translations
from newsletter.web.language import choose_language

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
DOMAIN = "web"

Translator = Callable[..., str]

# `{{ _("text") }}` or `{{ _('text') }}` with no placeholders, no escapes, no whitespace control.
CONSTANT_CALL = re.compile(r"""\{\{ *_\((?:"([^"\\]*)"|'([^'\\]*)')\) *\}\}""")
JINJA_SYNTAX = ("{{", "}}", "{%", "%}", "{#", "#}")
# `{{ _("text %(name)s", name=value) }}`: one placeholder, its value a plain (dotted) name.
PLACEHOLDER_CALL = re.compile(
    r"""\{\{ *_\("([^"\\%]*%\((\w+)\)s[^"\\%]*)", *\2=([A-Za-z_][\w.]*)\) *\}\}"""
)
# `{{ site.name }}` and `{{ site.organisation or site.name }}`, the same on every page of a site.
SITE_NAME = re.compile(r"\{\{ *site\.(?:organisation or site\.)?name *\}\}")
# A whole-line `{% for code in languages %}` loop; unrolled over LANGUAGES for a site.
LANGUAGE_LOOP = re.compile(
    r"^[ \t]*\{% for code in languages %\}\n"
    r"(?P<body>(?:(?![ \t]*\{%).*\n)+?)"
    r"[ \t]*\{% endfor %\}\n",
    re.MULTILINE,
)
LANGUAGE_NAME = "{{ site.language_names.get(code, code) }}"
# A page that extends base.html, its blocks, and base.html's (empty) blocks.
EXTENDS_BASE = '{% extends "base.html" %}\n'
CHILD_BLOCK = re.compile(r"\{% block (\w+) %\}(.*?)\{% endblock %\}", re.DOTALL)
EMPTY_BLOCK = re.compile(r"\{% block (\w+) %\}\{% endblock %\}")
JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")
# A path that request.url.path would give back unchanged.
PLAIN_PATH = re.compile(r"[A-Za-z0-9/_.=~-]*")


HTML_TYPE = (b"content-type", b"text/html; charset=utf-8")


class HtmlPage(HTMLResponse):
    """HTMLResponse whose two headers (length, type) are made directly: Starlette's general
    init_headers, which looks for headers given and builds the type's text, is made for any
    response (a page passes no headers; added later, they go through response.headers)."""

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        if headers is not None or self.media_type != "text/html" or self.charset != "utf-8":
            super().init_headers(headers)
        elif self.status_code < 200 or self.status_code in (204, 304):
            self.raw_headers = [HTML_TYPE]
        else:
            self.raw_headers = [(b"content-length", b"%d" % len(self.body)), HTML_TYPE]


def N_(message: str) -> str:
    """Mark a message for translation where it is defined; translate it where it is shown."""
    return message


SiteKey = tuple[str, str, tuple[tuple[str, str], ...]]


def _constant(text: str) -> bool:
    return not any(mark in text for mark in JINJA_SYNTAX)


def fill_site(source: str, key: SiteKey) -> str:
    """An .html source with the site's name and language-name loops written in, escaped."""
    name, organisation, names = key
    values = {"name": name, "organisation or site.name": organisation or name}

    def fill_name(match: re.Match[str]) -> str:
        text = values["organisation or site.name" if "organisation" in match.group(0) else "name"]
        return str(escape(text)) if _constant(text) else match.group(0)

    def unroll(match: re.Match[str]) -> str:
        body = match.group("body")
        names_by_code = dict(names)
        lines = []
        for code in LANGUAGES:
            if not re.fullmatch(r"[a-z]{2,3}", code):
                return match.group(0)
            label = names_by_code.get(code, code)
            if not _constant(label):
                return match.group(0)
            line = body.replace("{{ code }}", code).replace(LANGUAGE_NAME, str(escape(label)))
            line = line.replace("{% if code == ", f'{{% if "{code}" == ')
            if any(re.search(r"\bcode\b", tag) for tag in JINJA_TAG.findall(line)):
                return match.group(0)  # the loop uses `code` some other way: leave it to Jinja
            lines.append(line)
        return "".join(lines)

    return LANGUAGE_LOOP.sub(unroll, SITE_NAME.sub(fill_name, source))


def fill_placeholder(match: re.Match[str], _: Translator) -> str:
    """`{{ _("Text %(name)s", name=value) }}` as the translated, escaped text around
    `{{ value }}`: the same output, since escaping goes character by character and the values
    given to page templates are plain text. Left as it is when the translation has any other
    `%` or Jinja syntax."""
    text, name, value = match.groups()
    placeholder = f"%({name})s"
    translated = _(text)
    parts = translated.split(placeholder)
    if "%" in translated.replace(placeholder, "") or not all(map(_constant, parts)):
        return match.group(0)
    return f"{{{{ {value} }}}}".join(str(escape(part)) for part in parts)


class TranslatedLoader(BaseLoader):
    """Template sources with their constant `_()` calls replaced by one language's text."""

    def __init__(self, language: str, site: SiteKey | None = None) -> None:
        self.files = FileSystemLoader(TEMPLATES)
        self.language = language
        self.site = site

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = self.files.get_source(environment, template)
        _ = translator(self.language)
        html = template.endswith(".html")

        def fill(match: re.Match[str]) -> str:
            text = _(match.group(1) if match.group(1) is not None else match.group(2))
            if any(mark in text for mark in JINJA_SYNTAX):
                return match.group(0)  # leave it to render time rather than parse it as Jinja
            return str(escape(text)) if html else text

        source = CONSTANT_CALL.sub(fill, source)
        if self.site is not None and html:
            source = PLACEHOLDER_CALL.sub(lambda match: fill_placeholder(match, _), source)
            source = fill_site(source, self.site)
            if re.fullmatch(r"[a-z]{2,3}", self.language):  # page() passes lang=language
                source = source.replace("{{ lang }}", self.language)
            source = self.inline_parent(environment, source)
        return source, filename, uptodate

    def inline_parent(self, environment: Environment, source: str) -> str:
        """A page that only fills blocks of base.html, as base.html with those blocks in it.

        Rendering is then one template instead of two (2.5 µs of a preferences page). The
        blocks stay blocks, so names resolve as before; any other page is left as it is.
        """
        body = source.removeprefix(EXTENDS_BASE)
        blocks = dict(CHILD_BLOCK.findall(body))
        if body == source or CHILD_BLOCK.sub("", body).strip() or "super()" in body:
            return source
        if any("{% block" in text or "self." in text for text in blocks.values()):
            return source
        base = self.get_source(environment, "base.html")[0]
        empty = set(EMPTY_BLOCK.findall(base))
        if not set(blocks) <= empty or len(empty) != base.count("{% block"):
            return source
        return EMPTY_BLOCK.sub(
            lambda m: f"{{% block {m[1]} %}}{blocks.get(m[1], '')}{{% endblock %}}", base
        )


class FlatGlobals(Environment):
    """An Environment whose templates keep their globals in a plain dict.

    Jinja's default ChainMap over the environment's globals is copied into every render's
    context, and iterating it cost 4 µs a page; nothing here changes globals after loading.
    """

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}


@lru_cache(maxsize=64)
def environment(language: str = "en", site: SiteKey | None = None) -> Environment:
    """One language's template environment (autoescape for .html, never for .txt)."""
    return FlatGlobals(
        loader=TranslatedLoader(language, site),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


@lru_cache(maxsize=16)
def translator(language: str) -> Translator:
    """`_` for one language: gettext from web.po, then named %-formatting."""
    catalog = translations(language, DOMAIN)

    def _(message: str, **values: Any) -> str:
        text = catalog.gettext(message)
        return text % values if values else text

    return _


def render(template: str, language: str, **context: Any) -> str:
    """Render a template in a language."""
    return (
        environment(language)
        .get_template(template)
        .render(_=translator(language), lang=language, **context)
    )


def page(
    request: Request, template: str, language: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """An HTML page in a language, with the organisation's name, logo and stylesheet."""
    site = request.app.state.web.site.for_language(language)
    request.scope.setdefault("state", {})["language"] = language  # request.state.language
    body = site_render(site, template, language, {"here": request_path(request), **context})
    return HtmlPage(body, status_code=status)


def site_render(site: Any, template: str, language: str, context: Mapping[str, Any]) -> str:
    """A template rendered for a per-language site (web.site.for_language), kept loaded in
    site.cache."""
    loaded = site.cache.get(template)
    if loaded is None:  # Jinja's own cache takes a lock and a hash of the site's key each time
        loaded = site.cache[template] = environment(language, site.template_key).get_template(
            template
        )
    return loaded.render(
        _=translator(language), lang=language, site=site, languages=LANGUAGES, **context
    )


def language_options(site: Any, codes: Sequence[str], chosen: str) -> Markup:
    """The `<option>` lines of a language `<select>`, `chosen` selected, as a template's loop
    over the codes would write them (indented six spaces, one a line); built once per
    per-language site and choice (site.cache), since a loop cost a preferences page a dozen
    escapes and calls."""
    key = ("language options", tuple(codes), chosen)
    found = site.cache.get(key)
    if found is None:
        names = site.language_names
        found = site.cache[key] = Markup("\n      ").join(
            Markup('<option value="{0}" lang="{0}"{1}>{2}</option>').format(
                code, Markup(" selected") if code == chosen else "", names.get(code, code)
            )
            for code in codes
        )
    return found


CHECKBOX = Markup(
    '<div class="check">\n'
    '      <input type="checkbox" id="list-{0}" name="list" value="{0}"{1}>\n'
    '      <label for="list-{0}">{2}{3}</label>\n'
    "    </div>"
)


def list_checkboxes(site: Any, choices: Sequence[Any]) -> Markup:
    """A checkbox for each list (audience.preferences.ListChoice), indented four spaces, as a
    template's loop over them would write it; each choice's markup is built once per
    per-language site (site.cache): it was five escapes and as many lookups a list a page."""
    parts = []
    for choice in choices:
        key = ("list checkbox", choice)
        found = site.cache.get(key)
        if found is None:
            hint = Markup(' <span class="hint">{}</span>').format(choice.description)
            found = site.cache[key] = CHECKBOX.format(
                choice.id, Markup(" checked") if choice.subscribed else "", choice.name,
                hint if choice.description else "",
            )
        parts.append(found)
    return Markup("\n    ").join(parts)


@lru_cache(maxsize=64)
def _fixed_body(template: str, language: str) -> bytes:
    return render(template, language).encode("utf-8")


def fixed_page(request: Request, template: str, language: str) -> HTMLResponse:
    """A page whose template uses nothing but its language (one_click.html), rendered and
    encoded once."""
    request.scope.setdefault("state", {})["language"] = language  # request.state.language
    return HtmlPage(_fixed_body(template, language))


def request_path(request: Request) -> str:
    """request.url.path without building the whole URL when the path is plain (tokens are)."""
    path = request.scope["path"]
    return path if PLAIN_PATH.fullmatch(path) else request.url.path


def request_language(
    request: Request,
    *,
    preference: str | None = None,
    default: str | None = None,
    allowed: Sequence[str] | None = None,
) -> str:
    """The page language for this request: preference, ?lang=, Accept-Language, the list's
    default, the configured default language."""
    if allowed is None and preference is not None and preference in LANGUAGES:
        return preference  # choose_language's answer, without parsing the query and headers
    return choose_language(
        preference=preference,
        query=request.query_params.get("lang"),
        header=request.headers.get("accept-language"),
        default=default,
        allowed=allowed,
        fallback=request.app.state.web.site.default_language,
    )
