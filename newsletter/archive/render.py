"""Jinja2 rendering of the archive's HTML pages, with the workspace's templates first.

An operator changes the look by copying a file from the built-in templates/archive/ into
<workspace>/templates/archive/ and editing it. A template's fingerprint covers the templates it
extends or includes, so editing base.html rebuilds every page and editing issue.html only the
issue pages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

from newsletter.archive.inputs import builtin_templates
from newsletter.archive.plan import PagePlan
from newsletter.errors import NewsletterError
from newsletter.i18n import LOCALES, translations

TEMPLATES = ("root.html", "index.html", "issue.html", "404.html", "events.html",
             "statement.html", "statements.html")
DOMAIN = "archive"


class ArchiveError(NewsletterError):
    """The archive cannot be built: a template, an output folder or an asset is wrong."""


class PageRenderer:
    """Renders planned pages; one per build (the workspace templates are read once)."""

    def __init__(self, workspace: Path) -> None:
        override = workspace / "templates" / "archive"
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader([
                jinja2.FileSystemLoader(str(override)),
                jinja2.FileSystemLoader(str(builtin_templates())),
            ]),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def _source(self, name: str) -> str:
        try:
            source, _filename, _uptodate = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
        except jinja2.TemplateNotFound:
            raise ArchiveError(f"archive template {name!r} not found") from None
        return source

    def _digest(self, name: str, seen: frozenset[str] = frozenset()) -> str:
        source = self._source(name)
        digest = hashlib.sha256(source.encode("utf-8"))
        if name not in seen:
            try:
                parsed = self.env.parse(source, name)
            except jinja2.TemplateSyntaxError as exc:
                raise ArchiveError(f"archive template {name}:{exc.lineno}: {exc.message}") from None
            for child in sorted(filter(None, meta.find_referenced_templates(parsed))):
                digest.update(self._digest(child, seen | {name}).encode())
        return digest.hexdigest()

    @cached_property
    def fingerprints(self) -> dict[str, str]:
        """Template name -> digest of it and all it pulls in; UI strings per language."""
        prints = {name: self._digest(name) for name in TEMPLATES}
        for folder in sorted(LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
            language = folder.parts[-3]
            prints[f"labels:{language}"] = hashlib.sha256(folder.read_bytes()).hexdigest()
        return prints

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self.env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise ArchiveError(f"archive template {name}:{exc.lineno}: {exc.message}") from None
        except jinja2.TemplateNotFound:
            raise ArchiveError(f"archive template {name!r} not found") from None

    def render(self, page: PagePlan, **extra: Any) -> bytes:
        """Bytes of one HTML page; `extra` carries what is too big to hash (the email body).

        Wrap trusted HTML in markupsafe.Markup; plain strings in `extra` are escaped.
        """
        gettext: Callable[[str], str] = translations(page.language, DOMAIN).gettext
        values = dict(page.context)
        values.update(extra)
        try:
            text = self._template(page.template).render(_=gettext, page_kind=page.kind, **values)
        except jinja2.TemplateError as exc:
            raise ArchiveError(f"archive template {page.template}: {exc}") from None
        return text.encode("utf-8")
