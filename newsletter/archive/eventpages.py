"""The archive's events: an "Upcoming events" page and an iCalendar feed per language.

The events come from the sent editions (ArchivedEdition.events, the stored edition's events as
plain data). An event that is over by the build's `now` moves to the page's past section; the
feed (`/<lang>/events.ics`, which calendar apps subscribe to) keeps them all. Its DTSTAMP is
the newest issue's date, never the clock, so a build with nothing new writes the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from newsletter.archive.urls import relative_href
from newsletter.compose.events import Event, calendar, when_text
from newsletter.links import events_feed_path, events_path

if TYPE_CHECKING:
    from newsletter.archive.plan import ArchivedEdition, PagePlan, _Planner


def _collect(planner: _Planner, language: str) -> list[tuple[ArchivedEdition, Event]]:
    """The language's events, once each (by UID), soonest first."""
    found: dict[str, tuple[ArchivedEdition, Event]] = {}
    for edition in planner.by_language.get(language, []):
        for data in edition.events:
            event = Event.from_dict(data)
            found.setdefault(event.uid or f"{edition.slug}#{event.key}", (edition, event))
    return sorted(found.values(), key=lambda pair: pair[1].start)


def _item(planner: _Planner, here: str, edition: ArchivedEdition, event: Event) -> dict[str, Any]:
    base = planner.config.base_url
    calendar_path = event.calendar_url.removeprefix(base)
    return {
        "title": event.title,
        "start_iso": event.start.date().isoformat() if event.all_day else event.start.isoformat(),
        "when": when_text(event, edition.language, planner.config.dates),
        "place": event.place, "online": event.online, "link": event.link,
        "description": event.description,
        "calendar_href": (relative_href(here, calendar_path)
                          if calendar_path != event.calendar_url else event.calendar_url),
        "issue_title": edition.title or edition.subject,
        "issue_href": relative_href(here, planner.paths[(edition.slug, edition.language)]),
    }


def _over(event: Event, now: datetime) -> bool:
    return event.over_at < now


def plan_events(planner: _Planner, language: str, now: datetime) -> None:
    """Plan the events page and the calendar feed of a language that has events."""
    events = _collect(planner, language)
    if not events:
        return
    here = events_path(language)
    context = planner.common(here, language)
    context["upcoming"] = [_item(planner, here, e, ev) for e, ev in events if not _over(ev, now)]
    context["past"] = [_item(planner, here, e, ev) for e, ev in reversed(events)
                       if _over(ev, now)]
    context["calendar_feed_href"] = relative_href(here, events_feed_path(language))
    context["calendar_feed_url"] = planner.config.base_url + events_feed_path(language)
    targets = {lang: events_path(lang) for lang in planner.languages
               if lang in planner.with_events}
    context["switcher"] = planner.switcher(here, targets, language)
    context["alternates"] = context["switcher"] if len(targets) > 1 else []
    context["x_default"] = ""
    planner.page(here, "events", "events.html", language, context)
    stamp = max(e.issue_date[:10] for e, _ in events)
    planner.page(events_feed_path(language), "calendar", "", language, {
        "stamp": stamp, "events": [ev.to_dict() for _, ev in events]})


def render_calendar(page: PagePlan) -> bytes:
    """The iCalendar feed's bytes."""
    events = [Event.from_dict(data) for data in page.context["events"]]
    try:
        stamp = date.fromisoformat(page.context["stamp"])
    except ValueError:
        stamp = date(1970, 1, 1)
    return calendar(events, stamp)


def edition_events(events: list[Event]) -> tuple[Mapping[str, Any], ...]:
    """Events as the plan keeps them (plain data, hashed into the pages' inputs)."""
    return tuple(event.to_dict() for event in events)
