"""Building the archive from a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from pathlib import Path

import feedparser
import pytest
from lxml import etree
from lxml import html as lxml_html

from newsletter.archive.assets import legacy_name
from newsletter.archive.writer import MANIFEST
from newsletter.images import hashed_name, process
from tests.archive.conftest import (
    ARCHIVE_URL,
    EMAIL_RE,
    Builder,
    Newsroom,
    internal_links,
    png_bytes,
    resolves,
    site_files,
)

ATOM = "{http://www.w3.org/2005/Atom}"


def newsroom_with_history(newsroom: Newsroom) -> None:
    """Sent in three languages, sent in two, a draft, a cancelled one, a private list's issue."""
    newsroom.issue("2026-01-spring")
    newsroom.issue("2026-02-summit", sent=("en", "fr"))
    newsroom.issue("2026-03-draft", status="draft")
    newsroom.issue("2026-04-cancelled", status="cancelled", sent=())
    newsroom.add_list("board", name="Board", public=False)
    newsroom.issue("2026-05-board-only", list_slug="board")


def test_only_sent_issues_appear_and_only_in_languages_they_were_sent_in(
    newsroom: Newsroom, build: Builder
) -> None:
    newsroom_with_history(newsroom)
    report = build()
    files = set(site_files(build.out))
    issue_pages = {f for f in files if f.count("/") == 3 and f.endswith("index.html")}
    assert issue_pages == {
        "en/2026/2026-01-spring/index.html",
        "fr/2026/2026-01-spring/index.html",
        "es/2026/2026-01-spring/index.html",
        "en/2026/2026-02-summit/index.html",
        "fr/2026/2026-02-summit/index.html",
    }
    for lang in ("en", "fr", "es"):
        assert {f"{lang}/index.html", f"{lang}/feed.xml"} <= files
    assert {"index.html", "sitemap.xml", MANIFEST} <= files
    assert report.languages == ["en", "fr", "es"]
    assert report.editions == 5
    es_index = (build.out / "es/index.html").read_text()
    assert "2026-01-spring" in es_index and "2026-02-summit" not in es_index
    assert not any("draft" in f or "cancelled" in f or "board" in f for f in files)
    root = lxml_html.fromstring((build.out / "index.html").read_bytes())
    choices = {li.get("lang"): li.text_content() for li in root.xpath(".//main//li[@lang]")}
    assert set(choices) == {"en", "fr", "es"}
    assert "Français" in choices["fr"] and "Numéros précédents" in choices["fr"]


def test_every_internal_link_and_image_resolves_to_a_file(
    newsroom: Newsroom, build: Builder
) -> None:
    newsroom.picture("2026-01-spring", png_bytes("navy"))
    newsroom_with_history(newsroom)
    newsroom.issue("2026-06-pictures", image="https://cdn.example.net/remote.jpg")
    build(per_page=2)
    newsroom.issue("2026-07-photo", image="photo.png", sent=("fr",))
    newsroom.picture("2026-07-photo", png_bytes("olive"))
    build(per_page=2)
    pages = [p for rel, p in site_files(build.out).items() if rel.endswith(".html")]
    assert len(pages) > 10
    broken = [(page.relative_to(build.out).as_posix(), value)
              for page in pages for value, path in internal_links(build.out, page)
              if not resolves(build.out, path)]
    assert broken == []


def test_images_next_to_an_issue_are_copied_under_content_hashed_names(
    newsroom: Newsroom, build: Builder
) -> None:
    picture = newsroom.picture("2026-01-photo", png_bytes("navy"))
    newsroom.issue("2026-01-photo", image="photo.png", languages=("en",))
    build()
    page = build.out / "en/2026/2026-01-photo"
    legacy = legacy_name("photo.png", png_bytes("navy"))  # what mails sent before point at
    copies = sorted(p.name for p in page.glob("photo.*.png") if p.name != legacy)
    assert len(copies) == 1 and re.fullmatch(r"photo\.[0-9a-f]{10}\.png", copies[0])
    assert (page / str(legacy)).read_bytes() == (page / copies[0]).read_bytes()
    assert f'src="{copies[0]}"' in (page / "index.html").read_text()
    assert (page / copies[0]).read_bytes() == process(png_bytes("navy"))[0]
    # the composer points the sent email at this very file: issue URL + hashed_name(...)
    assert copies[0] == hashed_name("photo.png", png_bytes("navy"))
    feed = (build.out / "en/feed.xml").read_text()
    assert f"{ARCHIVE_URL}/en/2026/2026-01-photo/{copies[0]}" in feed

    picture.write_bytes(png_bytes("maroon"))
    report = build()
    assert copies[0] not in [p.name for p in page.glob("photo.*.png")]
    assert report.removed == 2  # the picture and its name for older mails


def test_feeds_are_valid_atom_with_full_content_newest_first(
    newsroom: Newsroom, build: Builder
) -> None:
    newsroom_with_history(newsroom)
    build()
    for lang, expected in (("en", 2), ("fr", 2), ("es", 1)):
        raw = (build.out / f"{lang}/feed.xml").read_bytes()
        root = etree.fromstring(raw)
        assert root.tag == f"{ATOM}feed"
        for name in ("id", "title", "updated"):
            assert root.find(f"{ATOM}{name}") is not None and root.findtext(f"{ATOM}{name}")
        assert root.find(f"{ATOM}author/{ATOM}name") is not None
        entries = root.findall(f"{ATOM}entry")
        assert len(entries) == expected
        for entry in entries:
            for name in ("id", "title", "updated"):
                assert entry.findtext(f"{ATOM}{name}")
            assert entry.find(f"{ATOM}link").get("rel", "alternate") == "alternate"
        parsed = feedparser.parse(raw)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.feed.language == lang
        dates = [e.updated_parsed for e in parsed.entries]
        assert dates == sorted(dates, reverse=True)
        first = parsed.entries[0]
        assert first.link.startswith(f"{ARCHIVE_URL}/{lang}/2026/")
        assert "Paragraph 2 about refugees" in first.content[0].value
        assert "display:none" not in first.content[0].value


def test_no_page_or_feed_holds_an_email_address_or_a_subscriber_token(
    newsroom: Newsroom, build: Builder
) -> None:
    token = "MTIzNDU2Nzg5MC5hYmNkZWZnaGlqa2xtbm9w.Zx9Qw3Er5Ty7Ui9Op1As"
    leaked = (
        f'<p><a href="https://news.example.org/unsubscribe/{token}">Unsubscribe</a> '
        f'<a href="https://news.example.org/preferences/{token}">Preferences</a> '
        '<a href="https://example.org/report?id=7&amp;email=ana%40example.com'
        '&amp;utm_source=newsletter">Report</a></p>'
        '<img src="https://track.example.net/open.gif" width="1" height="1" alt="">'
    )
    newsroom_with_history(newsroom)
    newsroom.issue("2026-06-leaky", extra=leaked)
    build()
    for rel, path in site_files(build.out).items():
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not EMAIL_RE.search(text), rel
        assert token not in text and "ana%40" not in text, rel
        assert "utm_source" not in text and "track.example.net" not in text, rel
        assert not re.search(r"/(unsubscribe|preferences|confirm)/", text), rel
    page = (build.out / "en/2026/2026-06-leaky/index.html").read_text()
    assert 'href="https://news.example.org/manage">Unsubscribe' in page
    assert 'href="https://example.org/report?id=7">Report' in page


def test_issue_page_links_its_language_versions_with_hreflang_and_a_switcher(
    newsroom: Newsroom, build: Builder
) -> None:
    newsroom_with_history(newsroom)
    build()
    doc = lxml_html.fromstring((build.out / "fr/2026/2026-02-summit/index.html").read_bytes())
    assert doc.get("lang") == "fr"
    alternates = {link.get("hreflang"): link.get("href")
                  for link in doc.findall(".//link[@rel='alternate'][@hreflang]")}
    assert alternates == {
        "en": f"{ARCHIVE_URL}/en/2026/2026-02-summit/",
        "fr": f"{ARCHIVE_URL}/fr/2026/2026-02-summit/",
        "x-default": f"{ARCHIVE_URL}/en/2026/2026-02-summit/",  # the default language's edition
    }
    index = lxml_html.fromstring((build.out / "fr/index.html").read_bytes())
    chooser = {link.get("hreflang"): link.get("href")
               for link in index.findall(".//link[@rel='alternate'][@hreflang]")}
    assert chooser["x-default"] == f"{ARCHIVE_URL}/"  # the root page lets readers choose
    switcher = doc.xpath(".//nav[contains(@class, 'languages')]//a")
    assert {a.get("hreflang"): a.get("href") for a in switcher} == {
        "en": "../../../en/2026/2026-02-summit/", "fr": "./"}
    assert [a.get("hreflang") for a in switcher if a.get("aria-current") == "page"] == ["fr"]
    subscribe = [a.get("href") for a in doc.xpath(".//nav[contains(@class, 'site-nav')]//a")]
    assert "https://news.example.org/subscribe/news" in subscribe
    assert len(doc.findall(".//main")) == 1 and doc.find(".//header") is not None
    assert doc.find(".//h1") is not None


def test_home_pages_are_paginated_newest_first(newsroom: Newsroom, build: Builder) -> None:
    for month in range(1, 6):
        newsroom.issue(f"2026-0{month}-issue", languages=("en",))
    build(per_page=2)
    assert {f for f in site_files(build.out) if f.startswith("en/page/")} == {
        "en/page/2/index.html", "en/page/3/index.html"}
    first = lxml_html.fromstring((build.out / "en/index.html").read_bytes())
    titles = [a.text for a in first.xpath(".//ol[@class='issues']//h2/a")]
    assert titles == ["News from the network 5", "News from the network 4"]
    assert first.xpath(".//a[@rel='next']")[0].get("href") == "page/2/"
    last = lxml_html.fromstring((build.out / "en/page/3/index.html").read_bytes())
    titles = [a.text for a in last.xpath(".//ol[@class='issues']//h2/a")]
    assert titles == ["News from the network 1"]
    assert last.xpath(".//a[@rel='prev']")[0].get("href") == "../2/"
    assert not last.xpath(".//a[@rel='next']")


def test_site_title_and_base_url_come_from_the_archive_settings(
    newsroom: Newsroom, build: Builder
) -> None:
    newsroom.issue("2026-01-spring")
    build(titles={"fr": "Nouvelles de la coalition"}, base_url="https://archive.example.net/")
    fr = lxml_html.fromstring((build.out / "fr/index.html").read_bytes())
    en = lxml_html.fromstring((build.out / "en/index.html").read_bytes())
    assert fr.xpath(".//p[@class='site-title']/a")[0].text == "Nouvelles de la coalition"
    assert en.xpath(".//p[@class='site-title']/a")[0].text == "Test Network News"
    feed = (build.out / "fr/feed.xml").read_text()
    assert "Nouvelles de la coalition" in feed
    assert "<id>https://archive.example.net/fr/2026/2026-01-spring/</id>" in feed
    canonical = fr.xpath(".//link[@rel='canonical']")[0].get("href")
    assert canonical == "https://archive.example.net/fr/"


def test_cli_builds_and_reports_counts_as_json(
    newsroom: Newsroom, run, tmp_path: Path
) -> None:
    newsroom_with_history(newsroom)
    out = tmp_path / "cli-site"
    first = run.json("archive", "build", "--out", str(out))
    assert first["written"] == first["pages"] > 0 and first["unchanged"] == 0
    again = run.json("archive", "build", "--out", str(out))
    assert again["written"] == 0 and again["unchanged"] == first["pages"]
    text = run("archive", "build", "--out", str(out), "--clean").output
    assert f"{first['pages']} written, 0 unchanged, 0 removed" in text


def test_clean_refuses_a_folder_it_did_not_build(newsroom: Newsroom, run, tmp_path: Path) -> None:
    newsroom.issue("2026-01-spring")
    foreign = tmp_path / "documents"
    foreign.mkdir()
    (foreign / "thesis.odt").write_text("precious")
    result = run("archive", "build", "--out", str(foreign), "--clean", ok=False)
    assert result.exit_code == 1 and "refusing to clean" in result.output
    assert "Traceback" not in result.output
    assert (foreign / "thesis.odt").exists()


def test_a_broken_workspace_template_is_reported_with_its_line(
    newsroom: Newsroom, run, workspace: Path
) -> None:
    newsroom.issue("2026-01-spring")
    override = workspace / "templates" / "archive"
    override.mkdir(parents=True)
    (override / "index.html").write_text('{% extends "base.html" %}\n{% block main %}{% if %}')
    result = run("archive", "build", ok=False)
    assert result.exit_code == 1
    assert "index.html:2" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("status", ["sending", "sent"])
def test_an_issue_still_sending_appears_in_the_languages_already_sent(
    newsroom: Newsroom, build: Builder, status: str
) -> None:
    newsroom.issue("2026-01-spring", status=status, sent=("en",))
    build()
    assert (build.out / "en/2026/2026-01-spring/index.html").exists()
    assert not (build.out / "fr/2026/2026-01-spring").exists()


def test_serve_without_a_built_site_says_what_to_run(run, tmp_path: Path) -> None:
    result = run("archive", "serve", "--out", str(tmp_path / "nothing"), ok=False)
    assert result.exit_code == 1
    assert "run `newsletter archive build` first" in result.output


def test_sitemap_lists_every_page_with_its_language_versions(
    newsroom: Newsroom, build: Builder
) -> None:
    newsroom_with_history(newsroom)
    build()
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9", "x": "http://www.w3.org/1999/xhtml"}
    root = etree.fromstring((build.out / "sitemap.xml").read_bytes())
    locs = [u.findtext("s:loc", namespaces=ns) for u in root.findall("s:url", ns)]
    pages = {f for f in site_files(build.out) if f.endswith(".html") and f != "404.html"}
    assert {loc.removeprefix(ARCHIVE_URL + "/") + "index.html" for loc in locs} == pages
    summit = next(u for u in root.findall("s:url", ns)
                  if u.findtext("s:loc", namespaces=ns).endswith("/fr/2026/2026-02-summit/"))
    assert summit.findtext("s:lastmod", namespaces=ns) == "2026-01-29"
    assert {link.get("hreflang") for link in summit.findall("x:link", ns)} == {"en", "fr"}


def test_404_page_works_at_any_depth_in_every_language(newsroom: Newsroom, build: Builder) -> None:
    newsroom_with_history(newsroom)
    build()
    doc = lxml_html.fromstring((build.out / "404.html").read_bytes())
    assert doc.find(".//meta[@name='robots']").get("content") == "noindex"
    assert doc.find(".//link[@rel='canonical']") is None
    assert doc.findtext(".//h1") == "Page not found"
    links = {a.get("hreflang"): (a.get("href"), a.text_content())
             for a in doc.xpath(".//main//a[@hreflang]")}
    # Shown for any missing URL, so its links cannot be relative; each says "past issues" in
    # its own language.
    assert links == {"en": (f"{ARCHIVE_URL}/en/", "Past issues"),
                     "fr": (f"{ARCHIVE_URL}/fr/", "Numéros précédents"),
                     "es": (f"{ARCHIVE_URL}/es/", "Números anteriores")}
