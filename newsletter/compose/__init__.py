"""The issue composer: Markdown in several languages -> Jinja2 + MJML -> HTML and text shells.

    source = load_issue(workspace, "2026-11-coalition-update")
    edition = compile_issue(source, "fr", settings)       # once per issue and language
    html, text = edition.fill(Slots(name=..., unsubscribe_url=...))   # per recipient, µs
    report = check_issue(source, settings, list_languages=("en", "fr", "es"))
"""

from newsletter.compose.checkrules import Finding
from newsletter.compose.checks import CheckReport, check_issue
from newsletter.compose.compiler import CompiledEdition, compile_issue
from newsletter.compose.errors import ComposeError
from newsletter.compose.slots import SLOT_KEYS, Slots
from newsletter.compose.source import EditionSource, IssueSource, load_issue

__all__ = [
    "SLOT_KEYS", "CheckReport", "CompiledEdition", "ComposeError", "EditionSource", "Finding",
    "IssueSource", "Slots", "check_issue", "compile_issue", "load_issue",
]
