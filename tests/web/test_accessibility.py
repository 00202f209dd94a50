"""The subscriber's pages in Chromium, checked by axe-core: forms, answers, errors (SQLite only)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from newsletter.links import confirm_url, preferences_url, unsubscribe_url
from tests.axe import violations
from tests.conftest import chromium_browser
from tests.web.conftest import WebEnv
from tests.web.test_browser import live  # noqa: F401  (the app under a real uvicorn server)

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A tab that lets axe's script in despite the pages' Content-Security-Policy."""
    from tests.axe import axe_source

    context = browser.new_context(bypass_csp=True)
    tab = context.new_page()
    tab.axe = axe_source()
    yield tab
    context.close()


class Audit:
    """Runs axe on each page visited and keeps what it finds, to report every page at once."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.found: list[str] = []

    def check(self, what: str) -> None:
        self.found += [f"{what}: {v}" for v in violations(self.page, self.page.axe)]


def test_the_axe_check_does_find_faults(page: Any) -> None:
    """The harness itself: a page with known faults is reported, rule and element named."""
    page.set_content('<html><body><h1>A</h1><h3>C</h3><img src="x.png">'
                     '<p style="color:#777;background:#888">grey on grey</p></body></html>')
    found = "\n".join(violations(page, page.axe))
    for rule in ("html-has-lang", "image-alt", "heading-order", "color-contrast"):
        assert rule in found
    assert "img" in found


def test_axe_finds_no_moderate_or_worse_violation_on_the_subscriber_pages(
        page: Any, live: tuple[WebEnv, str]) -> None:  # noqa: F811
    env, base = live
    news = env.add_list(name="Network News")
    audit = Audit(page)

    for lang in ("en", "fr"):
        page.goto(f"{base}/subscribe/news?lang={lang}")
        audit.check(f"subscribe form ({lang})")
    page.goto(f"{base}/subscribe/news")
    page.locator("#email").evaluate("input => { input.type = 'text'; }")  # let a typo through
    page.locator("#email").fill("ana@")
    page.locator("button[type=submit]").click()
    page.locator("#form-error").wait_for()
    audit.check("subscribe form with an error")
    page.locator("#email").fill("ana@example.org")
    page.locator("button[type=submit]").click()
    page.wait_for_load_state()
    audit.check("check your inbox")

    sid = env.subscriber("ana@example.org")["id"]
    page.goto(confirm_url(base, env.signer, sid, news))
    audit.check("confirm page")
    page.locator("main button").first.click()
    page.wait_for_load_state()
    audit.check("confirmed")

    page.goto(preferences_url(base, env.signer, sid, news))
    audit.check("preferences page")
    page.locator("button[value=save]").click()
    page.wait_for_load_state()
    audit.check("preferences saved")
    page.goto(preferences_url(base, env.signer, sid, news) + "/delete")
    audit.check("delete page")

    page.goto(unsubscribe_url(base, env.signer, sid, news))
    audit.check("unsubscribe page")
    page.locator("main button").first.click()
    page.wait_for_load_state()
    audit.check("unsubscribed")

    for path, what in (("/manage", "manage page"), ("/confirm/not-a-token", "invalid link"),
                       ("/no-such-page", "not found")):
        page.goto(base + path)
        audit.check(what)
    assert not audit.found, "axe finds:\n" + "\n".join(audit.found)
