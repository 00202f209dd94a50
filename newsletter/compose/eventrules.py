"""The pre-send rules about events (```event blocks): each names the file and the block's line.

An event already over when the issue is checked, an end before its start and a time zone that
zoneinfo does not know (the times are then read as UTC) are warnings: the editor may mean it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from newsletter.compose.blocks import events_of
from newsletter.compose.checkrules import CheckContext, Finding
from newsletter.compose.events import Event


def _events(ctx: CheckContext) -> Iterable[tuple[str, Event]]:
    for lang, doc in ctx.docs.items():
        shown = ctx.shown(ctx.source.editions[lang].path)
        for event in events_of(doc):
            yield shown, event


def current_time() -> dt.datetime:
    """The clock events are compared with when the check is given none."""
    return dt.datetime.now(dt.UTC)


def event_in_past(ctx: CheckContext) -> Iterable[Finding]:
    """An event that is over by now: readers cannot go to it."""
    now = ctx.now or current_time()
    for shown, event in _events(ctx):
        if max(event.start, event.over_at) < now:
            yield Finding("warning", "event-in-past", shown, event.line,
                          f"event {event.title!r} is over (it started on "
                          f"{event.shown(event.start)} {event.zone})")


def event_end_before_start(ctx: CheckContext) -> Iterable[Finding]:
    """An end earlier than the start (often a wrong day or a 12-hour clock)."""
    for shown, event in _events(ctx):
        if event.end is not None and event.end < event.start:
            yield Finding("warning", "event-end-before-start", shown, event.line,
                          f"event {event.title!r} ends ({event.shown(event.end)}) before "
                          f"it starts ({event.shown(event.start)})")


def event_time_zone(ctx: CheckContext) -> Iterable[Finding]:
    """A time zone zoneinfo does not know: the card and the calendar file show UTC times."""
    for shown, event in _events(ctx):
        if not event.zone_known:
            yield Finding("warning", "event-time-zone", shown, event.line,
                          f"event {event.title!r}: unknown time zone {event.zone!r}, its times "
                          "are read as UTC (use a name like \"Europe/Geneva\" or "
                          "\"America/New_York\")")
