"""docs/configuration.md documents every setting the code knows, with its real default."""

from __future__ import annotations

import json
import re
from pathlib import Path

from newsletter.config import SCHEMA, load_settings
from newsletter.configschema import ENTRY_SCHEMA

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
# The sections and the lists of tables ([[smtp.relays]] as "smtp.relays"), key -> (type, default).
KNOWN = {**SCHEMA, **{f"{s}.{k}": keys for (s, k), keys in ENTRY_SCHEMA.items()}}


def documented() -> dict[str, dict[str, str]]:
    """section -> key -> the default column, read from the page's tables."""
    found: dict[str, dict[str, str]] = {}
    section = None
    for line in DOC.read_text("utf-8").splitlines():
        heading = re.match(r"## `\[\[?([\w.]+)\]\]?`", line)
        if heading:
            section = heading.group(1)
            continue
        row = re.match(r"\| `(\w+)` \| [^|]+ \| `(.*?)` \|", line)
        if row and section:
            found.setdefault(section, {})[row.group(1)] = row.group(2)
    return found


def shown(default: object) -> str:
    """A default as the page writes it: TOML-like literals."""
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, str):
        return default or '""'
    if isinstance(default, (list, dict)):
        return json.dumps(default)
    return str(default)


def test_every_setting_is_documented_with_its_default():
    page = documented()
    missing = [f"[{s}] {k}" for s, keys in KNOWN.items() for k in keys
               if k not in page.get(s, {})]
    assert not missing, f"not in docs/configuration.md: {missing}"
    wrong = [f"[{s}] {k}: page says {page[s][k]!r}, code {shown(d)!r}"
             for s, keys in KNOWN.items() for k, (_, d) in keys.items()
             if page[s][k] != shown(d)]
    assert not wrong, wrong


def test_the_page_documents_no_setting_the_code_rejects():
    extra = [f"[{s}] {k}" for s, keys in documented().items() for k in keys
             if k not in KNOWN.get(s, {})]
    assert not extra, f"documented but unknown to the code: {extra}"


def test_the_documented_defaults_are_what_a_bare_workspace_gets(tmp_path):
    settings = load_settings(tmp_path, environ={})
    page = documented()
    for section, keys in SCHEMA.items():
        for key in keys:
            value = settings[section][key]
            assert shown(list(value) if isinstance(value, list) else value) == page[section][key]
