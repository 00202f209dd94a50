"""Jinja2 layouts: lookup order, strict variables, and errors that name the template and line.

Lookup order for a template name such as `email/base.mjml.j2`:
issues/<slug>/templates/, then <workspace>/templates/, then the built-in defaults.
Templates compiled once are kept in the user's cache folder (see TemplateCache, cache_folder).
"""

from __future__ import annotations

import os
import traceback
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from newsletter.compose.errors import ComposeError

BUILTIN = Path(__file__).resolve().parent.parent / "skeleton" / "templates"
if not BUILTIN.is_dir():  # a source checkout without the skeleton link
    BUILTIN = Path(__file__).resolve().parents[2] / "templates"


def search_path(workspace: Path, issue_folder: Path) -> tuple[str, ...]:
    """Template folders, most specific first."""
    folders = (issue_folder / "templates", workspace / "templates", BUILTIN)
    return tuple(str(f) for f in folders if f.is_dir())


def cache_folder() -> Path:
    """Where compiled templates are kept: $XDG_CACHE_HOME/newsletter/templates, by default
    ~/.cache/newsletter/templates. Not in the workspace: a command that only reads an issue
    (`issue check`) writes nothing there."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "newsletter" / "templates"


class TemplateCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept between runs, so a command does not compile the layout again
    (a twentieth of a small send's CPU). A file is named after the template's path (each
    workspace's own templates have their own) and used only while the template's source is
    unchanged; the escaping is part of the name, as the compiled code depends on it. Safe to
    delete; a folder that cannot be read or written, or a damaged file, only means compiling
    again."""

    def __init__(self, folder: Path, autoescape: bool) -> None:
        super().__init__(str(folder), ("html-" if autoescape else "text-") + "%s.cache")

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # unreadable or damaged: compiled again, and the file replaced
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            pass


@lru_cache(maxsize=32)
def _environment(paths: tuple[str, ...], autoescape: bool, cache: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(list(paths)),
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=True,
        bytecode_cache=TemplateCache(cache, autoescape),
    )


def environment(workspace: Path, issue_folder: Path, autoescape: bool = True) -> jinja2.Environment:
    """The Jinja environment for one issue (cached per lookup path)."""
    return _environment(search_path(workspace, issue_folder), autoescape, cache_folder())


def _shown(filename: str | None, workspace: Path) -> str:
    if not filename:
        return "<template>"
    path = Path(filename)
    for root in (workspace, BUILTIN.parent):
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            continue
    return str(path)


def _template_frame(exc: BaseException) -> tuple[str | None, int | None]:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith((".j2", ".mjml", ".txt", ".html")):
            return frame.filename, frame.lineno
    return None, None


def render(
    env: jinja2.Environment, name: str, context: dict[str, Any], workspace: Path,
    requested_by: tuple[str, int | None],
) -> str:
    """Render a template, turning every Jinja failure into a ComposeError with file and line."""
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound as exc:
        where, line = requested_by
        missing = exc.name or name
        raise ComposeError(
            f"template {missing!r} not found in {', '.join(env.loader.searchpath)}",  # type: ignore[union-attr]
            where, line, rule="template-error",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise ComposeError(f"template syntax error: {exc.message}",
                           _shown(exc.filename, workspace), exc.lineno,
                           rule="template-error") from None
    try:
        return template.render(context)
    except jinja2.TemplateSyntaxError as exc:  # from an {% include %} rendered later
        raise ComposeError(f"template syntax error: {exc.message}",
                           _shown(exc.filename, workspace), exc.lineno,
                           rule="template-error") from None
    except jinja2.TemplateNotFound as exc:
        filename, line = _template_frame(exc)
        raise ComposeError(f"template {exc.name!r} not found", _shown(filename, workspace),
                           line, rule="template-error") from None
    except jinja2.UndefinedError as exc:
        filename, line = _template_frame(exc)
        raise ComposeError(f"undefined variable: {exc.message}", _shown(filename, workspace),
                           line, rule="template-error") from None
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, ZeroDivisionError) as exc:
        filename, line = _template_frame(exc)
        raise ComposeError(f"template error: {exc}", _shown(filename, workspace), line,
                           rule="template-error") from None
