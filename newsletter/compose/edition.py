"""A compiled edition: one language of an issue with its recipient slots open, and the JSON
it is stored as at enqueue (compiler.py makes it; the send workers read it back).

Apart from the compiler, so that a send worker, which only fills stored editions, does not
import Markdown, Jinja2, MJML and Pillow (~0.1 s of CPU a process).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from newsletter.compose.events import Event
from newsletter.compose.slots import Shell, Slots, SlotSpec, resolve_values


@dataclass(frozen=True)
class CompiledEdition:
    """One language of an issue, compiled: shells with open recipient slots and the web page."""

    slug: str
    language: str
    list_slug: str
    subject: str
    title: str
    preheader: str
    date: str
    volume: str
    number: str
    html_shell: str
    text_shell: str
    web_html: str
    content_hash: str
    html_size: int
    assets: tuple[str, ...] = ()
    web_url: str = ""
    events: tuple[Event, ...] = ()
    _html: Shell | None = field(default=None, repr=False, compare=False)
    _text: Shell | None = field(default=None, repr=False, compare=False)
    _specs: tuple[SlotSpec, ...] = field(default=(), repr=False, compare=False)

    def fill(self, slots: Slots) -> tuple[str, str]:
        """(html, text) for one recipient: escaped values in HTML, plain values in text."""
        escaped, plain = resolve_values(self._specs, slots)
        return self._html.fill(escaped), self._text.fill(plain)  # type: ignore[union-attr]

    def pieces(self, slots: Slots) -> tuple[list[str], list[str]]:
        """`fill` before its joins: literal chunks at even indexes, the recipient's values at
        odd ones (Shell.pieces), so the sender encodes the literal chunks only once."""
        escaped, plain = resolve_values(self._specs, slots)
        return self._html.pieces(escaped), self._text.pieces(plain)  # type: ignore[union-attr]

    def fill_html(self, slots: Slots) -> str:
        """The HTML part alone for one recipient."""
        return self._html.fill(resolve_values(self._specs, slots)[0])  # type: ignore[union-attr]

    def fill_text(self, slots: Slots) -> str:
        """The text part alone for one recipient."""
        return self._text.fill(resolve_values(self._specs, slots)[1])  # type: ignore[union-attr]

    @property
    def slot_keys(self) -> tuple[str, ...]:
        """The slots this edition uses (name, unsubscribe_url, attr.<key>, ...)."""
        return tuple(dict.fromkeys(spec.key for spec in self._specs))

    def to_json(self) -> str:
        """The edition as plain JSON (format STORED_FORMAT), what the send stores at enqueue so
        that workers build messages from it, not from the workspace."""
        assert self._html is not None and self._text is not None  # compiled, not a stub
        fields = {k: getattr(self, k) for k in _STORED_FIELDS}
        return json.dumps({
            "format": STORED_FORMAT, **fields, "assets": list(self.assets),
            "html": self._html.sentinel_text(), "text": self._text.sentinel_text(),
            "slots": [[spec.key, spec.default] for spec in self._specs],
            "events": [event.to_dict() for event in self.events],
        }, ensure_ascii=False)

    @classmethod
    def from_json(cls, stored: str) -> CompiledEdition:
        """The edition to_json wrote; ValueError if it is not that format."""
        data = json.loads(stored)
        if not isinstance(data, dict) or data.get("format") != STORED_FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise ValueError(f"a stored edition in format {found!r}, not {STORED_FORMAT}")
        specs = tuple(SlotSpec(str(key), str(default)) for key, default in data["slots"])
        html, text = Shell(data["html"]), Shell(data["text"])
        shown = html.show(specs)
        return cls(**{k: data[k] for k in _STORED_FIELDS}, html_shell=shown,
                   text_shell=text.show(specs), html_size=len(shown.encode("utf-8")),
                   assets=tuple(data["assets"]),
                   events=tuple(Event.from_dict(e) for e in data.get("events", ())),
                   _html=html, _text=text, _specs=specs)


# Bumped when to_json's layout changes; from_json refuses any other, never guesses. ("events"
# was added without a bump: an edition stored before it has none, and older code ignores it.)
STORED_FORMAT = 1
_STORED_FIELDS = ("slug", "language", "list_slug", "subject", "title", "preheader", "date",
                  "volume", "number", "web_html", "content_hash", "web_url")
