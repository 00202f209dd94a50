"""The built archive in real headless Chromium (SQLite only: the browser sees files, not SQL)."""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.archive.builder import build_archive
from newsletter.archive.preview import serve_in_thread
from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from tests.archive.conftest import ARTIFACTS, NOW, Newsroom
from tests.conftest import (
    CHROMIUM_ARGS,
    chromium_browser,
    write_config,
)

pytestmark = pytest.mark.browser
ARGS = CHROMIUM_ARGS


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain-colour PNG, wide enough to overflow a phone screen if not scaled."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def site_url(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[str]:
    """A small archive built from SQLite and served on localhost."""
    root = tmp_path_factory.mktemp("browser")
    db = root / "newsletter.db"
    shutil.copy(sqlite_template, db)
    workspace = root / "ws"
    write_config(workspace, f"sqlite:///{db}", '[archive]\ntitles = {fr = "Nouvelles du réseau"}\n')
    engine = make_engine(f"sqlite:///{db}")
    newsroom = Newsroom(engine, workspace)
    pictures = workspace / "issues" / "2026-02-summit"
    pictures.mkdir(parents=True)
    (pictures / "banner.png").write_bytes(png(1200, 300, (18, 60, 90)))
    newsroom.issue("2026-01-spring")
    newsroom.issue("2026-02-summit", image="banner.png")
    newsroom.issue("2026-03-autumn", sent=("en",))
    newsroom.issue("2026-04-draft", status="draft")
    out = root / "site"
    build_archive(settings=load_settings(workspace), engine=engine, out=out, now=NOW)
    engine.dispose()
    server = serve_in_thread(out)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1024, "height": 800})
    tab = context.new_page()
    yield tab
    context.close()


def test_home_page_lists_issues_newest_first(page, site_url: str) -> None:  # type: ignore
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(site_url + "/en/")
    titles = page.locator("ol.issues h2 a").all_inner_texts()
    assert titles == ["News from the network 3", "News from the network 2",
                      "News from the network 1"]
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("main").count() == 1 and page.locator("h1").count() == 1
    page.screenshot(path=str(ARTIFACTS / "index-en-1024.png"), full_page=True)
    page.goto(site_url + "/")
    page.get_by_role("link", name="Français").click()
    page.wait_for_url("**/fr/")
    assert page.locator(".site-title a").inner_text() == "Nouvelles du réseau"
    assert page.locator("ol.issues h2 a").count() == 2


def test_language_switch_goes_to_the_same_issue_in_french(page, site_url: str) -> None:  # type: ignore
    page.goto(site_url + "/en/")
    page.get_by_role("link", name="News from the network 2").click()
    page.wait_for_url("**/en/2026/2026-02-summit/")
    page.locator("nav.languages").get_by_role("link", name="Français").click()
    page.wait_for_url("**/fr/2026/2026-02-summit/", wait_until="load")
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.locator("main h1").inner_text() == "Nouvelles du réseau 2"
    banner = page.locator("main img[alt='Delegates at the summit']")
    assert banner.evaluate("img => img.complete && img.naturalWidth") == 1200
    page.screenshot(path=str(ARTIFACTS / "issue-fr-1024.png"), full_page=True)


PHONE_PAGES = ["/", "/en/", "/fr/2026/2026-02-summit/", "/es/2026/2026-01-spring/"]


@pytest.mark.parametrize("path", PHONE_PAGES)
def test_pages_fit_a_375px_phone_without_horizontal_scrolling(  # type: ignore[no-untyped-def]
    page, site_url: str, path: str
) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(site_url + path)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"{path} is {width}px wide"
    for image in page.locator("main img").all():
        box = image.bounding_box()
        assert box is None or box["x"] + box["width"] <= 375
    name = path.strip("/").replace("/", "-") or "root"
    page.screenshot(path=str(ARTIFACTS / f"{name}-375.png"), full_page=True)


def test_pages_work_without_javascript(browser, site_url: str) -> None:  # type: ignore
    context = browser.new_context(java_script_enabled=False,
                                  viewport={"width": 375, "height": 740})
    tab = context.new_page()
    tab.goto(site_url + "/en/")
    tab.get_by_role("link", name="News from the network 1").click()
    tab.wait_for_url("**/en/2026/2026-01-spring/")
    tab.locator("nav.languages").get_by_role("link", name="Español").click()
    tab.wait_for_url("**/es/2026/2026-01-spring/")
    assert tab.locator("html").get_attribute("lang") == "es"
    context.close()
