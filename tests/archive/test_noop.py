"""A build with nothing new stops after reading its inputs; every kind of change still rebuilds.

`archive build` compares a digest of its inputs with the record the last build left in the site
(archive/inputs.py). Each test below changes one input the digest or the record must see and
checks that the pages showing it change: were that input missed, the build would stop early and
the site would keep showing the old text.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from newsletter.archive import inputs as archive_inputs
from newsletter.archive.inputs import builtin_templates
from newsletter.archive.render import ArchiveError
from newsletter.archive.writer import INPUTS, OutputError
from newsletter.compose.events import Event
from newsletter.config import load_settings
from newsletter.db.models import Edition, MailingList, Signature, Statement
from tests.archive.conftest import NOW, Builder, Newsroom, png_bytes, snapshot
from tests.statements.sample import write_statement

RENDERERS = ("jinja2", "feedgen", "markdown_it", "mjml", "PIL", "sqlalchemy.orm",
             "newsletter.archive.plan", "newsletter.archive.site")
NO_OP = """
import sys
from newsletter.cli.main import cli
try:
    cli(["-w", sys.argv[1], "archive", "build", "--json"])
except SystemExit:
    pass
print(sorted({name.split(".")[0] if not name.startswith(("sqlalchemy.", "newsletter."))
              else name for name in sys.modules} & set(sys.argv[2:])), file=sys.stderr)
"""


def two_issues(newsroom: Newsroom) -> None:
    newsroom.issue("2026-01-spring")
    newsroom.issue("2026-02-summit", sent=("en", "fr"))


def page(build: Builder, rel: str) -> str:
    return (build.out / rel).read_text(encoding="utf-8")


def test_a_build_with_nothing_new_renders_nothing_and_keeps_the_report(
    newsroom: Newsroom, build: Builder, monkeypatch: pytest.MonkeyPatch
) -> None:
    two_issues(newsroom)
    first = build()
    before = snapshot(build.out)
    from newsletter.archive import site

    def planned(**_: object) -> None:
        raise AssertionError("the site was planned again")

    monkeypatch.setattr(site, "build_site", planned)
    again = build()
    assert (again.written, again.removed, again.unchanged) == (0, 0, first.written)
    assert (again.editions, again.pages, again.languages) == (5, first.pages, ["en", "fr", "es"])
    assert snapshot(build.out) == before


def test_a_no_op_archive_build_loads_no_renderer(run, workspace: Path, newsroom: Newsroom) -> None:
    two_issues(newsroom)
    run("archive", "build")
    done = subprocess.run([sys.executable, "-c", NO_OP, str(workspace), *RENDERERS],
                          capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout)["written"] == 0
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_an_edited_web_version_is_published_again(newsroom: Newsroom, build: Builder) -> None:
    two_issues(newsroom)
    build()
    html = newsroom.edition_html("2026-01-spring", "fr").replace("Paragraph 1", "Paragraphe un")
    with newsroom.engine.begin() as conn:
        conn.execute(update(Edition).where(
            Edition.issue_id == newsroom.issues["2026-01-spring"], Edition.language == "fr"
        ).values(web_html=html))
    report = build()
    assert "Paragraphe un" in page(build, "fr/2026/2026-01-spring/index.html")
    assert "fr/2026/2026-01-spring/index.html" in report.changed


def test_a_renamed_list_shows_its_new_name(newsroom: Newsroom, build: Builder) -> None:
    two_issues(newsroom)
    newsroom.add_list("board", name="Board News")
    newsroom.issue("2026-03-board", list_slug="board")
    build()
    with newsroom.engine.begin() as conn:
        conn.execute(update(MailingList).where(MailingList.slug == "board").values(
            name="Board Weekly"))
    build()
    assert "Board Weekly" in page(build, "en/index.html")


def test_a_setting_change_rebuilds_the_pages_that_show_it(
    newsroom: Newsroom, build: Builder
) -> None:
    two_issues(newsroom)
    build()
    build(titles={"fr": "Les archives du réseau"})
    assert "Les archives du réseau" in page(build, "fr/index.html")
    assert "Les archives du réseau" not in page(build, "en/index.html")


def test_an_edited_workspace_template_rebuilds_even_at_the_same_size(
    newsroom: Newsroom, build: Builder
) -> None:
    two_issues(newsroom)
    override = newsroom.workspace / "templates" / "archive"
    override.mkdir(parents=True)
    base = (builtin_templates() / "base.html").read_text(encoding="utf-8")
    (override / "base.html").write_text(base.replace("</footer>", "<p>AAAA</p></footer>"))
    build()
    (override / "base.html").write_text(base.replace("</footer>", "<p>BBBB</p></footer>"))
    build()
    assert "BBBB" in page(build, "es/index.html")


def test_changed_ui_strings_change_the_digest(
    build: Builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locales = tmp_path / "locales"
    shutil.copytree(archive_inputs.LOCALES, locales)
    monkeypatch.setattr(archive_inputs, "LOCALES", locales)
    settings = load_settings(build.workspace)
    before = archive_inputs.read_inputs(settings, build.engine).digest
    po = locales / "fr" / "LC_MESSAGES" / "archive.po"
    po.write_text(po.read_text(encoding="utf-8").replace("précédents", "anciens"))
    assert archive_inputs.read_inputs(settings, build.engine).digest != before


def test_a_picture_replaced_under_the_same_name_is_published_again(
    newsroom: Newsroom, build: Builder
) -> None:
    newsroom.picture("2026-03-photo", png_bytes("navy"))
    newsroom.issue("2026-03-photo", image="photo.png", languages=("en",))
    build()
    first = sorted(p.name for p in (build.out / "en/2026/2026-03-photo").glob("photo.*"))
    newsroom.picture("2026-03-photo", png_bytes("olive"))
    build()
    again = sorted(p.name for p in (build.out / "en/2026/2026-03-photo").glob("photo.*"))
    new = set(again) - set(first)
    assert new and any(name in page(build, "en/2026/2026-03-photo/index.html") for name in new)


def test_a_missing_picture_added_later_is_published(newsroom: Newsroom, build: Builder) -> None:
    newsroom.issue("2026-03-photo", image="photo.png", languages=("en",))
    assert build().warnings  # the file is not there yet
    assert build().warnings  # and each build says so
    newsroom.picture("2026-03-photo", png_bytes("navy"))
    report = build()
    assert not report.warnings
    assert list((build.out / "en/2026/2026-03-photo").glob("photo.*.png"))


def test_a_translation_sent_for_later_shows_once_its_time_comes(
    newsroom: Newsroom, build: Builder
) -> None:
    two_issues(newsroom)
    newsroom.send("2026-02-summit", "es", at=NOW + timedelta(hours=1))
    build()
    assert not (build.out / "es/2026/2026-02-summit").exists()
    build(now=NOW + timedelta(hours=2))
    assert (build.out / "es/2026/2026-02-summit/index.html").exists()


def test_an_event_moves_to_the_past_once_it_is_over(newsroom: Newsroom, build: Builder) -> None:
    newsroom.issue("2026-01-spring", languages=("en",))
    start = NOW + timedelta(days=1)
    event = Event(title="Hearing at the council", start=start, end=start + timedelta(hours=2),
                  zone="UTC", key="event-1", uid="uid-1")
    with newsroom.engine.begin() as conn:
        conn.execute(update(Edition).values(compiled=json.dumps({"events": [event.to_dict()]})))
    build()
    upcoming = page(build, "en/events/index.html")
    build(now=NOW + timedelta(days=2))
    assert page(build, "en/events/index.html") != upcoming


def test_a_statement_says_closed_once_its_day_is_over(
    newsroom: Newsroom, build: Builder
) -> None:
    two_issues(newsroom)
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    write_statement(newsroom.workspace, closes=today.date() + timedelta(days=3))
    build(now=today)
    assert "Esta declaración está cerrada." not in page(build, "es/statements/new-deal/index.html")
    build(now=today + timedelta(days=5))
    assert "Esta declaración está cerrada." in page(build, "es/statements/new-deal/index.html")


def add_statement(newsroom: Newsroom) -> int:
    write_statement(newsroom.workspace)
    with newsroom.engine.begin() as conn:
        return conn.execute(insert(Statement).values(slug="new-deal").returning(
            Statement.id)).scalar_one()


def test_an_approved_signature_is_shown_at_the_next_build(
    newsroom: Newsroom, build: Builder
) -> None:
    two_issues(newsroom)
    statement = add_statement(newsroom)
    build()
    with newsroom.engine.begin() as conn:
        conn.execute(insert(Signature).values(
            statement_id=statement, organisation="Red Cruz Migrante",
            organisation_key="red cruz migrante", country="MX", organisation_type="ngo",
            contact_name="Ana", contact_email="ana@example.org", language="en",
            status="approved", listed=True))
    build()
    assert "Red Cruz Migrante" in page(build, "en/statements/new-deal/index.html")


def test_an_edited_statement_text_is_published_again(newsroom: Newsroom, build: Builder) -> None:
    two_issues(newsroom)
    add_statement(newsroom)
    build()
    text = newsroom.workspace / "statements" / "new-deal" / "en.md"
    text.write_text(text.read_text(encoding="utf-8") + "\nAnd we mean it.\n", encoding="utf-8")
    build()
    assert "And we mean it." in page(build, "en/statements/new-deal/index.html")


def test_a_build_that_failed_half_way_is_redone_when_the_change_is_undone(
    newsroom: Newsroom, build: Builder
) -> None:
    two_issues(newsroom)
    build()
    override = newsroom.workspace / "templates" / "archive"
    override.mkdir(parents=True)
    issue = (builtin_templates() / "issue.html").read_text(encoding="utf-8")
    # Renders the summit's English page (the newest comes first), then fails on the spring's;
    # the page keeps its size, so only the record tells it was made from other inputs.
    fails = "{% if slug == '2026-01-spring' %}{{ nope }}{% endif %}"
    (override / "issue.html").write_text(issue.replace('class="issue-meta', 'class="issue-xxxx')
                                         .replace("{% block main %}", "{% block main %}" + fails))
    with pytest.raises(ArchiveError, match="nope"):
        build()
    assert "issue-xxxx" in page(build, "en/2026/2026-02-summit/index.html")
    shutil.rmtree(override)
    build()
    assert "issue-xxxx" not in page(build, "en/2026/2026-02-summit/index.html")


def test_a_workers_build_still_refuses_a_site_missing_pictures_after_a_build_by_hand(
    newsroom: Newsroom, build: Builder
) -> None:
    newsroom.issue("2026-03-photo", image="photo.png", languages=("en",))
    assert build().warnings
    from newsletter.archive.builder import build_archive

    with pytest.raises(OutputError, match="not in"):
        build_archive(settings=load_settings(build.workspace), engine=build.engine,
                      out=build.out, now=NOW, whole=True)


def test_the_record_names_no_server_path(newsroom: Newsroom, build: Builder) -> None:
    newsroom.picture("2026-03-photo", png_bytes("navy"))
    newsroom.issue("2026-03-photo", image="photo.png", languages=("en",))
    newsroom.issue("2026-04-lost", image="lost.png", languages=("en",))
    build()
    record = (build.out / INPUTS).read_text(encoding="utf-8")
    assert str(newsroom.workspace.resolve()) not in record and "missing" not in record
    assert "issues/2026-03-photo/photo.png" in record


def test_a_withdrawn_list_takes_its_issues_out(newsroom: Newsroom, build: Builder) -> None:
    two_issues(newsroom)
    build()
    with newsroom.engine.begin() as conn:
        conn.execute(update(MailingList).values(public=False))
    report = build()
    assert report.editions == 0 and not (build.out / "en/2026/2026-01-spring").exists()
