"""An issue with two events, sent through SMTP then archived: the French reader's message shows
French dates, and the calendar files its links point at hold the right instants."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import icalendar

from newsletter.services import Services
from tests.archive.conftest import Sink
from tests.archive.test_after_send import send
from tests.compose.conftest import edition
from tests.compose.test_events import NBSP, TWO_EVENTS
from tests.conftest import write_config

SLUG = "2027-02-events"


def _parts(message: EmailMessage) -> tuple[str, str]:
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


def test_two_events_reach_the_french_reader_and_the_archive_calendars(
    run, workspace: Path, db_url: str, smtp_sink: tuple[int, Sink]
) -> None:
    port, box = smtp_sink
    write_config(workspace, db_url, f"[smtp]\nport = {port}\n")
    folder = workspace / "issues" / SLUG
    folder.mkdir(parents=True)
    (folder / "issue.toml").write_text('list = "news"\ndate = 2027-02-01\n', encoding="utf-8")
    for language in ("en", "fr"):
        (folder / f"{language}.md").write_text(edition(TWO_EVENTS), encoding="utf-8")
    run("lists", "add", "news", "--name", "News", "--languages", "en,fr",
        "--default-language", "en")
    for address, language in {"amina@example.org": "en", "jean@example.org": "fr"}.items():
        run("subscribers", "add", address, "--list", "news", "--language", language,
            "--confirmed", "--consent-source", "test")

    send(workspace, SLUG)
    french = next(m for m in box.messages if m["To"].addresses[0].username == "jean")
    html, text = _parts(french)
    for part in (html, text):
        assert f"10{NBSP}mars{NBSP}2027, 14:30–16:00 CET" in part
        assert f"1er{NBSP}juillet{NBSP}2027, 09:00–10:00 EDT" in part
    link = f"https://news.example.org/archive/fr/2027/{SLUG}/event-1.ics"
    assert link in html and "Ajouter à l’agenda" in html

    report = run.json("archive", "build")
    out = Path(report["out"])
    files = {lang: [out / lang / "2027" / SLUG / f"event-{n}.ics" for n in (1, 2)]
             for lang in ("en", "fr")}
    starts = []
    for lang, paths in files.items():
        for path in paths:
            (item,) = icalendar.Calendar.from_ical(path.read_bytes()).walk("VEVENT")
            starts.append((lang, item.decoded("dtstart").astimezone(UTC), str(item["uid"])))
    assert [s[1] for s in starts] == [datetime(2027, 3, 10, 13, 30, tzinfo=UTC),
                                      datetime(2027, 7, 1, 13, 0, tzinfo=UTC)] * 2
    assert starts[0][2] == starts[2][2] and starts[1][2] == starts[3][2]  # one UID per event

    page = (out / "fr" / "events" / "index.html").read_text(encoding="utf-8")
    assert "Événements à venir" in page and f"10{NBSP}mars{NBSP}2027, 14:30–16:00 CET" in page
    assert 'href="../2027/2027-02-events/event-1.ics"' in page
    feed = icalendar.Calendar.from_ical((out / "fr" / "events.ics").read_bytes())
    assert [i.decoded("dtstart").astimezone(UTC) for i in feed.walk("VEVENT")] == [
        datetime(2027, 3, 10, 13, 30, tzinfo=UTC), datetime(2027, 7, 1, 13, 0, tzinfo=UTC)]
    files["fr"].append(out / "fr" / "events.ics")

    before = {p: p.read_bytes() for paths in files.values() for p in paths}
    again = run.json("archive", "build")
    assert {p: p.read_bytes() for p in before} == before  # a rebuild writes the same files
    assert not any(f.endswith(".ics") for f in again["changed"])


def test_publishing_before_the_send_writes_the_calendar_files(
    services: Services, workspace: Path,
) -> None:
    from newsletter.archive.publish import publish_issue
    from newsletter.compose import compile_issue, load_issue
    from newsletter.delivery.editions import edition_record

    folder = workspace / "issues" / SLUG
    folder.mkdir(parents=True)
    (folder / "issue.toml").write_text('list = "news"\ndate = 2027-02-01\n', encoding="utf-8")
    (folder / "fr.md").write_text(edition(TWO_EVENTS), encoding="utf-8")
    settings = services.settings
    record = edition_record(compile_issue(load_issue(workspace, SLUG), "fr", settings))
    out = workspace / "published"
    done = publish_issue(settings, services.engine, SLUG, "news", "News", [record], out=out)
    assert done.calendars == [f"fr/2027/{SLUG}/event-1.ics", f"fr/2027/{SLUG}/event-2.ics"]
    (item,) = icalendar.Calendar.from_ical((out / done.calendars[1]).read_bytes()).walk("VEVENT")
    assert item.decoded("dtstart").astimezone(UTC) == datetime(2027, 7, 1, 13, 0, tzinfo=UTC)
