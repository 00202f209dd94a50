"""The issue composer: Markdown in several languages -> Jinja2 + MJML -> HTML and text shells.

    source = load_issue(workspace, "2026-11-coalition-update")
    edition = compile_issue(source, "fr", settings)       # once per issue and language
    html, text = edition.fill(Slots(name=..., unsubscribe_url=...))   # per recipient, µs
    report = check_issue(source, settings, list_languages=("en", "fr", "es"))

The names below are loaded on first use: a module that needs one part of the composer (the
archive reads stored events through compose/events.py) does not import all of it, Markdown and
Jinja2 included (0.24 s of a no-op `archive build`).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from newsletter.compose.checkrules import Finding
    from newsletter.compose.checks import CheckReport, check_issue
    from newsletter.compose.compiler import compile_issue
    from newsletter.compose.edition import CompiledEdition
    from newsletter.compose.errors import ComposeError
    from newsletter.compose.slots import SLOT_KEYS, Slots
    from newsletter.compose.source import EditionSource, IssueSource, load_issue

_HOMES = {
    "Finding": "checkrules", "CheckReport": "checks", "check_issue": "checks",
    "CompiledEdition": "edition", "compile_issue": "compiler", "ComposeError": "errors",
    "SLOT_KEYS": "slots", "Slots": "slots", "EditionSource": "source", "IssueSource": "source",
    "load_issue": "source",
}

__all__ = [
    "SLOT_KEYS", "CheckReport", "CompiledEdition", "ComposeError", "EditionSource", "Finding",
    "IssueSource", "Slots", "check_issue", "compile_issue", "load_issue",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"newsletter.compose.{home}"), name)
