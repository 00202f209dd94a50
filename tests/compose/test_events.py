"""Events in an issue: the card in the reader's language, the calendar file, the checks, and
one clear line for a block the editor got wrong."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import icalendar
import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.compose import (
    CompiledEdition,
    ComposeError,
    check_issue,
    compile_issue,
    load_issue,
)
from newsletter.compose.events import calendar
from newsletter.config import Settings

NBSP = "\u00a0"
TWO_EVENTS = """Our events.

```event
title = "Hearing on safe pathways"
start = 2027-03-10T14:30
end = 2027-03-10T16:00
timezone = "Europe/Paris"
place = "Palais Bourbon, Paris"
link = "https://example.org/hearing"
```

```event
title = "Side event at the review"
start = "2027-07-01 09:00"
end = 2027-07-01T10:00
timezone = "America/New_York"
place = "online"
```
"""


def _two_events(make_issue) -> None:  # type: ignore[no-untyped-def]
    make_issue("events", {"en.md": TWO_EVENTS, "fr.md": TWO_EVENTS})


def test_french_card_shows_french_dates_in_the_event_time_zone(make_issue, compose_ws,
                                                                  settings) -> None:
    _two_events(make_issue)
    edition = compile_issue(load_issue(compose_ws, "events"), "fr", settings)
    html, text = edition.fill_html(_slots()), edition.fill_text(_slots())
    for part in (html, text):
        assert f"10{NBSP}mars{NBSP}2027, 14:30–16:00 CET" in part
        assert f"1er{NBSP}juillet{NBSP}2027, 09:00–10:00 EDT" in part
        assert "Ajouter à l’agenda" in part and "En ligne" in part
    url = "https://news.example.org/archive/fr/2026/events/event-1.ics"
    assert url in html and url in text
    english = compile_issue(load_issue(compose_ws, "events"), "en", settings).fill_html(_slots())
    assert "March 10, 2027, 2:30" in english and "Add to calendar" in english


def _slots():  # type: ignore[no-untyped-def]
    from newsletter.compose import Slots
    return Slots(name="Ana")


def test_calendar_file_holds_the_right_utc_instants(make_issue, compose_ws, settings) -> None:
    _two_events(make_issue)
    source = load_issue(compose_ws, "events")
    fr, en = (compile_issue(source, lang, settings) for lang in ("fr", "en"))
    parsed = icalendar.Calendar.from_ical(calendar(list(fr.events), datetime(2027, 1, 1).date()))
    items = parsed.walk("VEVENT")
    assert [i.decoded("dtstart").astimezone(UTC) for i in items] == [
        datetime(2027, 3, 10, 13, 30, tzinfo=UTC), datetime(2027, 7, 1, 13, 0, tzinfo=UTC)]
    assert [i.decoded("dtend").astimezone(UTC) for i in items] == [
        datetime(2027, 3, 10, 15, 0, tzinfo=UTC), datetime(2027, 7, 1, 14, 0, tzinfo=UTC)]
    assert str(items[0]["summary"]) == "Hearing on safe pathways"
    assert str(items[0]["location"]) == "Palais Bourbon, Paris"
    assert str(items[0]["url"]) == "https://example.org/hearing"
    assert items[0]["dtstart"].params["TZID"] == "Europe/Paris"
    # one UID per event, the same in every language: adding both copies keeps one event
    assert [e.uid for e in fr.events] == [e.uid for e in en.events]
    assert len({e.uid for e in fr.events}) == 2


def test_stored_edition_keeps_its_events(make_issue, compose_ws, settings) -> None:
    from newsletter.compose import CompiledEdition

    _two_events(make_issue)
    edition = compile_issue(load_issue(compose_ws, "events"), "fr", settings)
    assert CompiledEdition.from_json(edition.to_json()).events == edition.events


@pytest.mark.parametrize(("block", "line", "message"), [
    ('title = "A"\nstart = 2027-03-10T14:30\nvenue = "Paris"', 10, "unknown key 'venue'"),
    ('title = "A"\nstart = "10 March, 2pm"', 9, "start = '10 March, 2pm' is not a date"),
    ('title = "A"\nstart = 2027-03-10\nend = 2027-03-10T18:00', 10,
     "start and end must both be dates (a whole-day event) or both dates and times"),
    ('start = 2027-03-10T14:30', 8, "the block needs a title"),
    ('title = "A"', 8, "the block needs a start"),
    ('title = "A\nstart = 2027-03-10T14:30', 8, "cannot read the block"),
])
def test_a_bad_event_block_is_one_line_naming_file_and_line(
    make_issue, compose_ws: Path, settings: Settings, block: str, line: int, message: str,
) -> None:
    make_issue(files={"en.md": f"```event\n{block}\n```\n"})
    with pytest.raises(ComposeError) as caught:
        compile_issue(load_issue(compose_ws, "broken"), "en", settings)
    text = str(caught.value)
    assert text.startswith(f"issues/broken/en.md:{line}: event: ") and "\n" not in text
    assert message in text
    result = CliRunner().invoke(cli, ["-w", str(compose_ws), "issue", "check", "broken"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"issues/broken/en.md:{line}: error event-error: event: " in result.output


def test_check_warns_about_past_reversed_and_unknown_zone_events(make_issue, compose_ws,
                                                                  settings) -> None:
    make_issue(files={"en.md": """```event
title = "Over"
start = 2026-01-10T10:00
```

```event
title = "Backwards"
start = 2027-05-02T18:00
end = 2027-05-02T08:00
timezone = "Europe/Berlin"
```

```event
title = "Nowhere"
start = 2027-05-03T18:00
timezone = "Mars/Olympus_Mons"
```
"""})
    now = datetime(2026, 12, 1, tzinfo=UTC)
    report = check_issue(load_issue(compose_ws, "broken"), settings, ["en"], now=now)
    found = {(f.severity, f.rule, f.file, f.line) for f in report.findings}
    assert ("warning", "event-in-past", "issues/broken/en.md", 7) in found
    assert ("warning", "event-end-before-start", "issues/broken/en.md", 12) in found
    assert ("warning", "event-time-zone", "issues/broken/en.md", 19) in found
    assert report.ok and len(report.findings) == 3
    later = check_issue(load_issue(compose_ws, "broken"), settings, ["en"],
                        now=datetime(2026, 1, 1, tzinfo=UTC))
    assert "event-in-past" not in {f.rule for f in later.findings}


WHOLE_DAYS = """Dates to keep.

```event
title = "Deadline: sign-on to the statement"
start = 2027-01-31
timezone = "Europe/Zurich"
```

```event
title = "Regional review"
start = 2027-02-10
end = 2027-02-11
place = "Geneva"
```
"""


def test_an_event_with_dates_only_is_all_day(make_issue, compose_ws, settings) -> None:
    make_issue("days", {"en.md": WHOLE_DAYS, "fr.md": WHOLE_DAYS})
    source = load_issue(compose_ws, "days")
    french = compile_issue(source, "fr", settings)
    text = french.fill_text(_slots())
    assert f"31{NBSP}janvier{NBSP}2027\n" in text  # the day alone: no time, no zone
    assert f"10{NBSP}février{NBSP}2027 – 11{NBSP}février{NBSP}2027\n" in text
    assert "00:00" not in text and "CET" not in text and "UTC" not in text
    english = compile_issue(source, "en", settings).fill_html(_slots())
    assert "January 31, 2027" in english and "12:00" not in english
    parsed = icalendar.Calendar.from_ical(calendar(list(french.events), date(2027, 1, 1)))
    items = parsed.walk("VEVENT")
    assert [(i["dtstart"].params.get("VALUE"), i["dtend"].params.get("VALUE")) for i in items] \
        == [("DATE", "DATE")] * 2
    assert [(i.decoded("dtstart"), i.decoded("dtend")) for i in items] == [
        (date(2027, 1, 31), date(2027, 2, 1)), (date(2027, 2, 10), date(2027, 2, 12))]
    assert b"DTSTART;VALUE=DATE:20270131" in calendar(list(french.events), date(2027, 1, 1))
    assert CompiledEdition.from_json(french.to_json()).events == french.events
    # The last day is not over until it ends.
    report = check_issue(source, settings, ["en", "fr"],
                         now=datetime(2027, 1, 31, 22, tzinfo=UTC))
    assert not [f for f in report.findings if f.rule == "event-in-past"]
    later = check_issue(source, settings, ["en", "fr"], now=datetime(2027, 2, 1, 1, tzinfo=UTC))
    assert any("'Deadline: sign-on to the statement' is over (it started on 2027-01-31 "
               in f.message for f in later.findings if f.rule == "event-in-past")
