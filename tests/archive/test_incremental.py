"""Incremental builds: nothing changed writes nothing; a change touches only what shows it."""

from __future__ import annotations

from sqlalchemy import update

from newsletter.archive.inputs import builtin_templates
from newsletter.archive.writer import INPUTS, MANIFEST
from newsletter.db.models import Edition, Issue
from tests.archive.conftest import Builder, Newsroom, site_files, snapshot


def changed_files(before: dict, after: dict) -> set[str]:
    """Files created, rewritten (new mtime or bytes) or deleted between two snapshots."""
    return {
        rel for rel in set(before) | set(after)
        if rel not in (MANIFEST, INPUTS) and before.get(rel) != after.get(rel)
    }


def history(newsroom: Newsroom) -> None:
    newsroom.issue("2026-01-spring")
    newsroom.issue("2026-02-summit", sent=("en", "fr"))
    newsroom.issue("2026-03-draft", status="draft")


def test_rebuild_with_nothing_changed_writes_nothing(newsroom: Newsroom, build: Builder) -> None:
    history(newsroom)
    first = build()
    before = snapshot(build.out)
    again = build()
    assert (again.written, again.removed) == (0, 0)
    assert again.unchanged == first.written
    assert snapshot(build.out) == before


def test_a_new_issue_touches_only_the_pages_that_list_or_show_it(
    newsroom: Newsroom, build: Builder
) -> None:
    history(newsroom)
    build()
    before = snapshot(build.out)
    newsroom.issue("2026-04-new", sent=("en", "fr"))
    report = build()
    expected = {
        "en/2026/2026-04-new/index.html", "fr/2026/2026-04-new/index.html",
        "en/index.html", "fr/index.html", "en/feed.xml", "fr/feed.xml", "sitemap.xml",
    }
    assert changed_files(before, snapshot(build.out)) == expected
    assert sorted(report.changed) == sorted(expected)
    assert report.written == len(expected) and report.removed == 0


def test_a_late_translation_updates_the_other_language_versions_of_that_issue(
    newsroom: Newsroom, build: Builder
) -> None:
    history(newsroom)
    build()
    before = snapshot(build.out)
    newsroom.send("2026-02-summit", "es")
    build()
    assert changed_files(before, snapshot(build.out)) == {
        "es/2026/2026-02-summit/index.html", "en/2026/2026-02-summit/index.html",
        "fr/2026/2026-02-summit/index.html", "es/index.html", "es/feed.xml", "sitemap.xml",
    }
    english = (build.out / "en/2026/2026-02-summit/index.html").read_text()
    assert 'hreflang="es"' in english


def test_editing_one_template_rebuilds_only_the_pages_made_from_it(
    newsroom: Newsroom, build: Builder
) -> None:
    history(newsroom)
    build()
    override = newsroom.workspace / "templates" / "archive"
    override.mkdir(parents=True)
    builtin = builtin_templates()
    issue_template = (builtin / "issue.html").read_text()
    (override / "issue.html").write_text(
        issue_template.replace("{% block main %}", "{% block main %}<p>Archived copy</p>")
    )
    before = snapshot(build.out)
    build()
    changed = changed_files(before, snapshot(build.out))
    issue_pages = {f for f in site_files(build.out) if f.count("/") == 3 and "index" in f}
    assert changed == issue_pages and len(issue_pages) == 5
    assert "Archived copy" in (build.out / "fr/2026/2026-01-spring/index.html").read_text()

    before = snapshot(build.out)
    (override / "base.html").write_text(
        (builtin / "base.html").read_text().replace("</footer>", "<p>Hosted by us</p></footer>")
    )
    build()
    changed = changed_files(before, snapshot(build.out))
    assert changed == {f for f in site_files(build.out) if f.endswith(".html")}


def test_clean_starts_over(newsroom: Newsroom, build: Builder) -> None:
    history(newsroom)
    first = build()
    (build.out / "stray.txt").write_text("left by hand")
    again = build(clean=True)
    assert again.written == first.written and again.unchanged == 0
    assert not (build.out / "stray.txt").exists()


def test_a_page_deleted_from_the_output_is_written_again(
    newsroom: Newsroom, build: Builder
) -> None:
    history(newsroom)
    build()
    (build.out / "fr/index.html").unlink()
    report = build()
    assert report.changed == ["fr/index.html"]


def test_a_withdrawn_issue_is_removed_and_others_keep_their_files(
    newsroom: Newsroom, build: Builder
) -> None:
    history(newsroom)
    build()
    (build.out / "operator-notes.txt").write_text("not ours")
    with newsroom.engine.begin() as conn:
        conn.execute(update(Issue).where(Issue.slug == "2026-02-summit").values(
            status="cancelled"))
    report = build()
    assert report.removed == 2
    assert not (build.out / "en/2026/2026-02-summit").exists()
    assert (build.out / "en/2026/2026-01-spring/index.html").exists()
    assert (build.out / "operator-notes.txt").exists()


def test_a_published_url_keeps_its_year_when_the_issue_date_is_edited(
    newsroom: Newsroom, build: Builder
) -> None:
    newsroom.issue("2026-12-year-end", languages=("en",), day="2026-12-30")
    build()
    with newsroom.engine.begin() as conn:
        conn.execute(update(Edition).values(issue_date="2027-01-02"))
    build()
    assert (build.out / "en/2026/2026-12-year-end/index.html").exists()
    assert not (build.out / "en/2027").exists()
    build(clean=True)
    assert (build.out / "en/2026/2026-12-year-end/index.html").exists()
