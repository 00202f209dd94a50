"""Events in an issue: the ```event block an editor writes, the typed Event, its card and its
calendar file.

An event is a fenced block with the info string `event` holding TOML keys:

    ```event
    title = "Regional review of the Global Compact"
    start = 2026-12-10T09:30
    end = 2026-12-10T17:00
    timezone = "Europe/Zurich"
    place = "Palais des Nations, Geneva"      # or "online"
    link = "https://example.org/review"
    ```

Start and end are wall-clock times in the event's time zone (an offset, if given, is converted
to it). An event written with dates only (`start = 2026-12-05`, and an optional `end` date, the
last day) lasts whole days: its card shows the dates alone and its calendar file has all-day
dates (VALUE=DATE). A time zone zoneinfo does not know is kept as written and the times are
read as UTC: `issue check` warns about it. The card shows the dates in the reader's language,
in the event's own time zone; the calendar file (.ics, made with `icalendar`) is published
beside the issue's web version, its UID the same in every language and every rebuild.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.compose.errors import ComposeError
from newsletter.localized import format_clock, format_day

if TYPE_CHECKING:
    import icalendar

KEYS = ("title", "start", "end", "timezone", "place", "online", "link", "description", "id")
ONLINE = "online"
_TOML_LINE = re.compile(r"line (\d+)")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# TOML wants seconds in a bare date-time; editors write 09:30, so add them.
_NO_SECONDS = re.compile(
    r"^(\s*(?:start|end)\s*=\s*\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d)(?=\s*(?:[#+Zz-]|$))", re.M)


@dataclass(frozen=True)
class Event:
    """One event as the editor wrote it; start and end are aware, in the event's time zone."""

    title: str
    start: dt.datetime
    end: dt.datetime | None
    zone: str  # the name as written ("Europe/Paris"); times are UTC when zoneinfo lacks it
    place: str = ""
    online: bool = False
    link: str = ""
    description: str = ""
    key: str = ""  # the calendar file's name in the folder, without ".ics"
    line: int = 0
    uid: str = ""  # set by the compiler: the same in every language of the issue
    calendar_url: str = ""  # set by the compiler: where the .ics is published
    all_day: bool = False  # dates only: start and end are midnight of the first and last day

    @property
    def zone_known(self) -> bool:
        return _zone(self.zone) is not None

    @property
    def over_at(self) -> dt.datetime:
        """The instant the event is over (for whole days, the end of its last day)."""
        last = self.end or self.start
        return last + dt.timedelta(days=1) if self.all_day else last

    def shown(self, moment: dt.datetime) -> str:
        """A start or end as the checks quote it: the date, and the time unless all-day."""
        return f"{moment:%Y-%m-%d}" if self.all_day else f"{moment:%Y-%m-%d %H:%M}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (what the stored edition keeps)."""
        data = asdict(self)
        data["start"] = self.start.isoformat()
        data["end"] = self.end.isoformat() if self.end else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """The event to_dict wrote."""
        tz = _zone(str(data["zone"])) or dt.UTC
        start = dt.datetime.fromisoformat(data["start"]).astimezone(tz)
        end = dt.datetime.fromisoformat(data["end"]).astimezone(tz) if data.get("end") else None
        values = {k: data[k] for k in KEYS_STORED if k in data}
        return cls(**{**values, "start": start, "end": end})


KEYS_STORED = ("title", "zone", "place", "online", "link", "description", "key", "line", "uid",
               "calendar_url", "all_day")


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _key_line(content: str, key: str, first: int) -> int:
    for number, text in enumerate(content.split("\n")):
        if re.match(rf"\s*{key}\s*=", text):
            return first + number
    return first


Fail = Callable[[str, str], NoReturn]


def _is_day(value: Any) -> bool:
    """A date without a time of day (TOML 2026-12-05, or the same in quotes)."""
    if isinstance(value, str):
        return bool(re.fullmatch(r"\s*\d{4}-\d\d-\d\d\s*", value))
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def _moment(value: Any, tz: dt.tzinfo, key: str, fail: Fail, all_day: bool) -> dt.datetime:
    if all_day != _is_day(value):
        fail(key, "start and end must both be dates (a whole-day event) or both dates and "
                  "times (write 2026-12-10 or 2026-12-10T09:30)")
    if isinstance(value, str):
        try:
            value = (dt.date.fromisoformat(value.strip()) if all_day
                     else dt.datetime.fromisoformat(value.strip()))
        except ValueError:
            fail(key, f"{key} = {value!r} is not a date and time (write 2026-12-10T09:30)")
    if all_day:
        return dt.datetime.combine(value, dt.time(), tz)
    if not isinstance(value, dt.datetime):
        fail(key, f"{key} must be a date and time like 2026-12-10T09:30, or a date")
    return value.astimezone(tz) if value.tzinfo else value.replace(tzinfo=tz)


def _text(data: Mapping[str, Any], key: str, fail: Fail) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        fail(key, f"{key} must be text in quotes")
    return str(value).strip()


def parse_event(content: str, shown: str, first_line: int, number: int) -> Event:
    """The Event of one block's TOML (`first_line` is the file line of its first key);
    ComposeError naming the file and line for anything wrong."""

    def fail(key: str, message: str) -> NoReturn:
        line = _key_line(content, key, first_line) if key else first_line
        raise ComposeError(f"event: {message}", shown, line, rule="event-error")

    try:
        data = tomllib.loads(_NO_SECONDS.sub(r"\1:00", content))
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        line = first_line + int(found.group(1)) - 1 if found else first_line
        raise ComposeError(f"event: cannot read the block: {str(exc).split(' (at')[0]}",
                           shown, line, rule="event-error") from None
    for key in data:
        if key not in KEYS:
            fail(key, f"unknown key {key!r} (known: {', '.join(KEYS)})")
    title = _text(data, "title", fail)
    if not title:
        fail("", "the block needs a title (title = \"...\")")
    if "start" not in data:
        fail("", "the block needs a start (start = 2026-12-10T09:30)")
    zone = _text(data, "timezone", fail) or "UTC"
    tz = _zone(zone) or dt.UTC
    all_day = _is_day(data["start"])
    start = _moment(data["start"], tz, "start", fail, all_day)
    end = _moment(data["end"], tz, "end", fail, all_day) if "end" in data else None
    place, online = _text(data, "place", fail), data.get("online", False)
    if not isinstance(online, bool):
        fail("online", "online must be true or false")
    if place.lower() == ONLINE:
        place, online = "", True
    key = _text(data, "id", fail) or f"event-{number}"
    if not _ID.match(key):
        fail("id", f"id = {key!r}: use lowercase letters, digits and dashes")
    return Event(title=title, start=start, end=end, zone=zone, place=place, online=online,
                 link=_text(data, "link", fail), description=_text(data, "description", fail),
                 key=key, line=first_line - 1, all_day=all_day)


# ---------------------------------------------------------------- the card in the email


def _zone_label(moment: dt.datetime) -> str:
    return moment.strftime("%Z") or "UTC"


def when_text(event: Event, language: str, languages: Mapping[str, Mapping[str, str]]) -> str:
    """"10 December 2026, 09:30–17:00 CET" in the reader's language and the event's zone;
    the day ("5 December 2026") or the days alone for a whole-day event."""
    start, end = event.start, event.end
    day = format_day(start.date(), language, languages)
    if event.all_day:
        if end is None or end.date() <= start.date():
            return day
        return f"{day} \u2013 {format_day(end.date(), language, languages)}"
    clock = format_clock(start, language, languages)
    if end is None or end == start:
        return f"{day}, {clock} {_zone_label(start)}"
    until = format_clock(end, language, languages)
    if end.date() != start.date():
        until = f"{format_day(end.date(), language, languages)}, {until}"
        return f"{day}, {clock} \u2013 {until} {_zone_label(start)}"
    return f"{day}, {clock}\u2013{until} {_zone_label(start)}"


def card(event: Event, language: str, languages: Mapping[str, Mapping[str, str]],
         gettext: Callable[[str], str]) -> dict[str, str]:
    """What the email's event card and the text part show, in the reader's language."""
    where = ", ".join(x for x in (event.place, gettext("Online") if event.online else "") if x)
    return {"title": event.title, "when": when_text(event, language, languages), "where": where,
            "link": event.link, "description": event.description,
            "calendar_url": event.calendar_url, "calendar_label": gettext("Add to calendar"),
            "link_label": gettext("Details")}


# ---------------------------------------------------------------- the calendar file


def uid(slug: str, key: str, archive_url: str) -> str:
    """The event's UID: one per archive, issue and event, whatever the language or the rebuild
    (a name-based UUID, as RFC 7986 advises: no "@" that could pass for an address)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{archive_url.rstrip('/')}/{slug}#{key}"))


def _vevent(event: Event, stamp: dt.datetime, page_url: str) -> icalendar.Event:
    import icalendar

    item = icalendar.Event()
    item.add("uid", event.uid)
    item.add("dtstamp", stamp)
    item.add("summary", event.title)
    if event.all_day:  # VALUE=DATE; DTEND is the day after the last (RFC 5545 3.6.1)
        item.add("dtstart", event.start.date())
        item.add("dtend", event.over_at.date())
    else:
        item.add("dtstart", event.start)
        if event.end is not None:
            item.add("dtend", event.end)
    location = ", ".join(x for x in (event.place, ONLINE if event.online else "") if x)
    if location:
        item.add("location", location)
    if event.link or page_url:
        item.add("url", event.link or page_url)
    description = "\n\n".join(x for x in (event.description, event.link, page_url) if x)
    if description:
        item.add("description", description)
    return item


def calendar(events: list[Event], stamp: dt.date, page_url: str = "") -> bytes:
    """An iCalendar file holding the events (DTSTAMP is the issue's date, so a rebuild writes
    the same bytes)."""
    # Imported here: icalendar brings dateutil, which a build with nothing to write does without.
    import icalendar

    cal = icalendar.Calendar()
    cal.add("prodid", "-//newsletter//events//EN")
    cal.add("version", "2.0")
    moment = dt.datetime.combine(stamp, dt.time(), dt.UTC)
    for event in events:
        cal.add_component(_vevent(event, moment, page_url))
    cal.add_missing_timezones()
    return cal.to_ical()
