"""Page and system-mail rendering: one autoescaping Jinja2 environment, one translator per language.

Templates call `_("English text", name=value)`; the translated text is formatted with %-style
named placeholders and then escaped like any other value, so a translation cannot inject markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from newsletter.i18n import LANGUAGES, translations
from newsletter.web.language import choose_language

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
DOMAIN = "web"

Translator = Callable[..., str]


def N_(message: str) -> str:
    """Mark a message for translation where it is defined; translate it where it is shown."""
    return message


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The shared template environment (autoescape for .html, never for .txt)."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
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
        environment()
        .get_template(template)
        .render(_=translator(language), lang=language, **context)
    )


def page(
    request: Request, template: str, language: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """An HTML page in a language, with the organisation's name, logo and stylesheet."""
    web = request.app.state.web
    request.state.language = language
    body = render(
        template,
        language,
        site=web.site,
        languages=LANGUAGES,
        here=request.url.path,
        **context,
    )
    return HTMLResponse(body, status_code=status)


def request_language(
    request: Request,
    *,
    preference: str | None = None,
    default: str | None = None,
    allowed: Sequence[str] | None = None,
) -> str:
    """The page language for this request: preference, ?lang=, Accept-Language, default, en."""
    return choose_language(
        preference=preference,
        query=request.query_params.get("lang"),
        header=request.headers.get("accept-language"),
        default=default,
        allowed=allowed,
    )
