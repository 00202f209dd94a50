"""Recipient slots: placeholders left open at compile time and filled per recipient.

The compiled HTML and text are split once into literal chunks and slot positions, so one
recipient costs a list copy, a few escapes and a join, not a template render.

Editors write placeholders in Markdown as `{{ name }}`, `{{ name | default("friend") }}`,
`{{ attr.organisation }}`, `{{ unsubscribe_url }}`, `{{ preferences_url }}` or `{{ web_url }}`.
Before Markdown and MJML see them they become ASCII sentinels (`qxslot3xq`), which survive
URL normalisation, HTML escaping and text wrapping unchanged.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SLOT_KEYS = ("name", "unsubscribe_url", "preferences_url", "web_url")
SENTINEL_RE = re.compile(r"qxslot(\d+)xq")
PLACEHOLDER_RE = re.compile(r"\{\{(.*?)\}\}", re.S)
_INSIDE_RE = re.compile(
    r"""^\s*(?P<key>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w-]*)?)\s*
        (?:\|\s*default\(\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')\s*\)\s*)?$""",
    re.X,
)


@dataclass(frozen=True)
class Slots:
    """One recipient's values for the open slots."""

    name: str = ""
    unsubscribe_url: str = ""
    preferences_url: str = ""
    web_url: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SlotSpec:
    """What one sentinel stands for: a slot key (or attr.<key>) and its fallback."""

    key: str
    default: str = ""

    def resolve(self, slots: Slots) -> str:
        """The recipient's value, or the fallback when it is empty."""
        if self.key.startswith("attr."):
            value = slots.attributes.get(self.key[5:], "")
        else:
            value = getattr(slots, self.key)
        return str(value) if value else self.default


def sentinel(index: int) -> str:
    """The ASCII placeholder that stands for slot `index` in a compiled text."""
    return f"qxslot{index}xq"


class SlotTable:
    """Collects the slots an edition uses and hands out their sentinels."""

    def __init__(self) -> None:
        self.specs: list[SlotSpec] = []
        self._index: dict[SlotSpec, int] = {}

    def sentinel(self, key: str, default: str = "") -> str:
        """The sentinel for a slot, added to the table on first use."""
        spec = SlotSpec(key, default)
        if spec not in self._index:
            self._index[spec] = len(self.specs)
            self.specs.append(spec)
        return sentinel(self._index[spec])


class UnknownPlaceholder(ValueError):
    """A `{{ ... }}` in Markdown that names no slot."""

    def __init__(self, text: str, offset: int) -> None:
        super().__init__(text)
        self.text = text
        self.offset = offset


def substitute_placeholders(text: str, table: SlotTable) -> str:
    """Replace `{{ slot }}` placeholders by sentinels; raise UnknownPlaceholder on any other."""

    def replace(match: re.Match[str]) -> str:
        inner = _INSIDE_RE.match(match.group(1))
        key = inner.group("key") if inner else ""
        if not inner or not (key in SLOT_KEYS or key.startswith("attr.")):
            raise UnknownPlaceholder(match.group(0), match.start())
        default = inner.group("dq") or inner.group("sq") or ""
        return table.sentinel(key, default)

    return PLACEHOLDER_RE.sub(replace, text)


class Shell:
    """A compiled text split into literal chunks and slot positions, filled by one join."""

    __slots__ = ("_parts", "_positions", "size")

    def __init__(self, text: str) -> None:
        pieces = SENTINEL_RE.split(text)
        # split() alternates literal, slot index, literal, ...: literals at even positions.
        self._parts = [p if i % 2 == 0 else "" for i, p in enumerate(pieces)]
        self._positions = tuple((i, int(p)) for i, p in enumerate(pieces) if i % 2 == 1)
        self.size = len(text.encode("utf-8"))

    def fill(self, values: list[str]) -> str:
        """Join the literal chunks with this recipient's values."""
        return "".join(self.pieces(values))

    def pieces(self, values: list[str]) -> list[str]:
        """What `fill` joins: the literal chunks at even indexes (the same str objects for
        every recipient) and this recipient's values at odd indexes between them."""
        parts = self._parts.copy()
        for pos, slot in self._positions:
            parts[pos] = values[slot]
        return parts

    def sentinel_text(self) -> str:
        """The text as compiled, sentinels in place: `Shell(shell.sentinel_text())` is the same
        shell again (how a stored edition is loaded)."""
        count = max((slot for _pos, slot in self._positions), default=-1) + 1
        return self.fill([sentinel(i) for i in range(count)])

    def show(self, specs: Sequence[SlotSpec]) -> str:
        """The shell with readable `{{slot:key}}` markers, for inspection and sizing."""
        return self.fill([f"{{{{slot:{s.key}}}}}" for s in specs])


def resolve_values(specs: tuple[SlotSpec, ...], slots: Slots) -> tuple[list[str], list[str]]:
    """Values for one recipient: HTML-escaped for the HTML part, plain for the text part."""
    plain = [spec.resolve(slots) for spec in specs]
    return [_escaped(v) for v in plain], plain


def _escaped(value: str) -> str:
    """html.escape(value): a value without any of the characters it replaces (a URL, most
    names) is its own escape, and five `in` (memchr) cost less than its five replaces or a
    regular expression's scan (the sender fills five values per message)."""
    if "&" in value or "<" in value or ">" in value or '"' in value or "'" in value:
        return html.escape(value)
    return value
