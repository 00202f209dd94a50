"""Pages rendered once with markers where a request's own values go, then filled by joining.

A preferences page differs from the next one by a few texts (the address, the name, the CSRF
token, the path) and by markup made once per site (pages.language_options, list_checkboxes):
running its template for each request cost more than anything else the handler does. Here the
template runs once per site, language, template and `fixed` context (the values it branches
on) with a marker for each value, and a request's page is the text between the markers joined
with its own values, escaped as Jinja would escape them. So `values` must only be written out
as text (`{{ name }}`, or a `_()` placeholder), never tested, filtered or looped over. The
first request's page and one with empty values are checked against a full render; a template
that fails keeps being rendered in full.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markupsafe import Markup, escape
from starlette.requests import Request

from newsletter.web.pages import HtmlPage, request_path, site_render

# Markers cannot come from a template's text, nor need escaping: NUL, the value's position, NUL.
MARK = "\x00"
# The text before the first value, then each value's name and the text after it.
Parts = tuple[str, tuple[tuple[str, str], ...]]
FULL_RENDER = ("", ())  # this page cannot be prepared: render it in full each time


def prepared_page(request: Request, site: Any, template: str, language: str, *,
                  fixed: Mapping[str, Any], status: int = 200, **values: str | Markup) -> HtmlPage:
    """What pages.page(request, template, language, status, **fixed, **values) answers; `site`
    is the app's web.site.for_language(language)."""
    request.scope.setdefault("state", {})["language"] = language  # request.state.language
    values["here"] = request_path(request)
    key = ("prepared", template, tuple(fixed.items()), tuple(values))
    parts = site.cache.get(key)
    if parts is None:
        parts = site.cache[key] = _prepare(site, template, language, fixed, values)
    if parts is FULL_RENDER:
        return HtmlPage(site_render(site, template, language, {**fixed, **values}), status)
    return HtmlPage(_fill(parts, values), status)


def _fill(parts: Parts, values: Mapping[str, Any]) -> str:
    head, rest = parts
    texts = {name: _escaped(value) for name, value in values.items()}  # once, used many times
    out = [head]
    for name, text in rest:
        out.append(texts[name])
        out.append(text)
    return "".join(out)


def _escaped(value: Any) -> str:
    """What Jinja writes for `{{ value }}` with autoescape on: markupsafe's escape, as text."""
    return str(escape(value))


def _prepare(site: Any, template: str, language: str, fixed: Mapping[str, Any],
             values: Mapping[str, Any]) -> Parts:
    """The template's text around its values' markers; FULL_RENDER when the first request's
    page, or the page with empty values, filled in, is not what a full render gives."""
    names = list(values)
    marked = {name: Markup(f"{MARK}{n}{MARK}") for n, name in enumerate(names)}
    pieces = site_render(site, template, language, {**fixed, **marked}).split(MARK)
    spots = pieces[1::2]
    if not all(spot.isdigit() and int(spot) < len(names) for spot in spots):
        return FULL_RENDER
    parts = (pieces[0], tuple((names[int(spot)], text)
                              for spot, text in zip(spots, pieces[2::2], strict=True)))
    for trial in (values, dict.fromkeys(values, "")):  # this request's values, and none
        if _fill(parts, trial) != site_render(site, template, language, {**fixed, **trial}):
            return FULL_RENDER
    return parts
