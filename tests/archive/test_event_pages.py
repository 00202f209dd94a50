"""The archive's events page and calendar feed: upcoming first, the ones over in a past
section, the feed holding every event once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar

from newsletter.archive.eventpages import render_calendar
from newsletter.archive.plan import plan_site
from newsletter.archive.render import PageRenderer
from newsletter.archive.sitemap import render_sitemap
from newsletter.compose.events import Event
from tests.archive.test_plan import CONFIG, NOW, PRINTS, edition

GENEVA = ZoneInfo("Europe/Zurich")


def _event(key: str, title: str, day: int, month: int = 11) -> dict[str, object]:
    start = datetime(2026, month, day, 10, 0, tzinfo=GENEVA)
    return Event(title=title, start=start, end=start.replace(hour=12), zone="Europe/Zurich",
                 key=key, uid=f"uid-{key}",
                 calendar_url=f"{CONFIG.base_url}/en/2026/a/{key}.ics").to_dict()


def _plan():  # type: ignore[no-untyped-def]
    with_events = replace(edition("a"), events=(
        _event("event-1", "Hearing", 10), _event("event-2", "Side event", 3, 12)))
    return plan_site([with_events, edition("b", "fr")], CONFIG, NOW, PRINTS)


def test_events_page_puts_what_is_over_in_the_past_section() -> None:
    page = next(p for p in _plan().pages if p.kind == "events")
    assert page.file == "en/events/index.html"
    assert [i["title"] for i in page.context["upcoming"]] == ["Side event"]
    assert [i["title"] for i in page.context["past"]] == ["Hearing"]
    assert page.context["upcoming"][0]["calendar_href"] == "../2026/a/event-2.ics"
    when = page.context["upcoming"][0]["when"]
    assert when == "December 3, 2026, 10:00\u202fAM–12:00\u202fPM CET"


def test_calendar_feed_lists_every_event_once() -> None:
    plan = _plan()
    feed = next(p for p in plan.pages if p.kind == "calendar")
    assert feed.file == "en/events.ics"
    items = icalendar.Calendar.from_ical(render_calendar(feed)).walk("VEVENT")
    assert [str(i["summary"]) for i in items] == ["Hearing", "Side event"]
    assert [i.decoded("dtstart").astimezone(UTC) for i in items] == [
        datetime(2026, 11, 10, 9, 0, tzinfo=UTC), datetime(2026, 12, 3, 9, 0, tzinfo=UTC)]
    assert render_calendar(feed) == render_calendar(feed)  # no clock in it


def test_only_languages_with_events_get_the_page_and_the_link(tmp_path: Path) -> None:
    plan = _plan()
    assert {p.language for p in plan.pages if p.kind in ("events", "calendar")} == {"en"}
    home = {p.file: p for p in plan.pages}
    assert home["en/index.html"].context["events_href"] == "events/"
    assert home["fr/index.html"].context["events_href"] == ""
    events = next(p for p in plan.pages if p.kind == "events")
    html = PageRenderer(tmp_path).render(events).decode()
    assert "Past events" in html and "Upcoming events" in html and "Hearing" in html


def test_the_sitemap_lists_the_events_page_of_languages_with_events() -> None:
    sitemap = next(p for p in _plan().pages if p.kind == "sitemap")
    xml = render_sitemap(sitemap).decode()
    assert f"<loc>{CONFIG.base_url}/en/events/</loc>" in xml
    assert "/fr/events/" not in xml and "events.ics" not in xml
