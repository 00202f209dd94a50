"""The events' calendar files (.ics), published beside each issue page.

An issue's events travel in its stored compiled edition (`CompiledEdition.to_json`, key
"events"), so the archive needs no workspace to publish them. Each event gets one file at its
"Add to calendar" URL (links.event_calendar_url), the same bytes at every rebuild.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from newsletter.compose.events import Event, calendar


@dataclass(frozen=True)
class CalendarFile:
    """One .ics file: its path under the site and what its bytes are made from."""

    file: str
    event: Event
    issue_date: str
    page_url: str

    @property
    def input_hash(self) -> str:
        """A digest of the inputs, so an unchanged file is kept without making it again."""
        blob = json.dumps(["ics-1", self.event.to_dict(), self.issue_date, self.page_url],
                          sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def data(self) -> bytes:
        return calendar([self.event], _day(self.issue_date), self.page_url)


def stored_events(compiled: str | None) -> list[Event]:
    """The events of a stored compiled edition (none for an edition stored before events)."""
    if not compiled:
        return []
    try:
        found = json.loads(compiled).get("events") or []
        return [Event.from_dict(item) for item in found]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def _day(issue_date: str) -> dt.date:
    try:
        return dt.date.fromisoformat(issue_date[:10])
    except ValueError:
        return dt.date(1970, 1, 1)


def calendar_files(base_url: str, issue_date: str,
                   events: Iterable[Event]) -> Iterator[CalendarFile]:
    """The files of one edition's events whose URL is under the archive's `base_url`."""
    prefix = base_url.rstrip("/") + "/"
    for event in events:
        if not event.calendar_url.startswith(prefix):
            continue
        page = event.calendar_url.rsplit("/", 1)[0] + "/"
        yield CalendarFile(event.calendar_url.removeprefix(prefix), event, issue_date, page)
