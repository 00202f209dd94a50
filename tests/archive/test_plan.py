"""Page planning is pure: plain editions, settings and `now` in, pages with input hashes out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from newsletter.archive.assets import local_refs, rewrite_refs
from newsletter.archive.plan import ArchiveConfig, ArchivedEdition, plan_site
from newsletter.archive.urls import relative_href
from newsletter.archive.webversion import scrub_url, split_web_version
from newsletter.images import hashed_name

CONFIG = ArchiveConfig(base_url="https://example.org/archive", app_url="https://example.org",
                       per_page=2, name="Network News", titles={}, default_language="en")
NOW = datetime(2026, 11, 26, tzinfo=UTC)
PRINTS = {"index.html": "i1", "issue.html": "s1", "root.html": "r1"}


def edition(slug: str, language: str = "en", day: str = "2026-03-01",
            sent: datetime = datetime(2026, 3, 1, tzinfo=UTC)) -> ArchivedEdition:
    return ArchivedEdition(slug=slug, language=language, list_slug="news", list_name="News",
                         subject=f"Subject {slug}", title="", preheader="", issue_date=day,
                         volume="", number="", sent_at=sent, html_sha=f"sha-{slug}-{language}")


def files(plan) -> set[str]:
    return {page.file for page in plan.pages}


def test_url_year_is_the_issue_date_year_else_the_sending_year() -> None:
    plan = plan_site([edition("a", day="2025-12-31"), edition("b", day="")], CONFIG, NOW, PRINTS)
    assert {"en/2025/a/index.html", "en/2026/b/index.html"} <= files(plan)


def test_an_issue_sent_after_now_is_not_listed_yet() -> None:
    later = edition("later", sent=datetime(2026, 12, 1, tzinfo=UTC))
    plan = plan_site([edition("a"), later], CONFIG, NOW, PRINTS)
    assert not any("later" in f for f in files(plan))


def test_pinned_urls_win_over_the_computed_year() -> None:
    plan = plan_site([edition("a", day="2027-01-02")], CONFIG, NOW, PRINTS,
                     pinned={"a|en": "/en/2026/a/"})
    assert "en/2026/a/index.html" in files(plan)


def test_a_template_change_alters_only_the_hashes_of_pages_made_from_it() -> None:
    editions = [edition(f"s{i}") for i in range(5)]
    before = {p.file: p.input_hash for p in plan_site(editions, CONFIG, NOW, PRINTS).pages}
    after = {p.file: p.input_hash
             for p in plan_site(editions, CONFIG, NOW, {**PRINTS, "issue.html": "s2"}).pages}
    changed = {f for f in before if before[f] != after[f]}
    assert changed == {f"en/2026/s{i}/index.html" for i in range(5)}


def test_languages_beyond_en_fr_es_get_pages_named_in_their_own_language() -> None:
    plan = plan_site([edition("a"), edition("a", "pt")], CONFIG, NOW, PRINTS)
    issue = next(p for p in plan.pages if p.file == "en/2026/a/index.html")
    names = {s["lang"]: s["name"] for s in issue.context["switcher"]}
    assert names == {"en": "English", "pt": "Português"}


@pytest.mark.parametrize(("here", "there", "link"), [
    ("/en/2026/a/", "/fr/2026/a/", "../../../fr/2026/a/"),
    ("/", "/en/", "en/"),
    ("/en/", "/en/", "./"),
    ("/en/page/2/", "/en/feed.xml", "../../feed.xml"),
])
def test_links_between_pages_are_relative(here: str, there: str, link: str) -> None:
    assert relative_href(here, there) == link


def test_personal_links_become_the_generic_manage_page() -> None:
    manage = "https://example.org/manage"
    assert scrub_url("https://example.org/unsubscribe/abc.def", manage) == manage
    assert scrub_url("https://x.org/a?utm_source=n&amp;id=3", manage) == "https://x.org/a?id=3"
    assert scrub_url("https://x.org/a?id=3", manage) == "https://x.org/a?id=3"


def test_local_images_are_found_and_repointed_but_urls_are_left_alone() -> None:
    html = ('<img src="photo.png"><img src="https://cdn.example/x.png">'
            '<a href="#top">top</a><a href="docs/report.pdf">pdf</a>')
    assert local_refs(html) == ["photo.png", "docs/report.pdf"]
    name = hashed_name("photo.png", b"data")
    assert rewrite_refs(html, {"photo.png": name}).startswith(f'<img src="{name}">')


def test_a_fragment_without_head_or_body_is_all_body() -> None:
    parts = split_web_version("<p>Hello</p>")
    assert (parts.styles, parts.body) == ("", "<p>Hello</p>")
