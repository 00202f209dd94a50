"""The compiled email in headless Chromium: nothing cut off at 600 px or 375 px, alt on images."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.compose.preview import write_preview
from newsletter.config import Settings
from tests.compose.conftest import EXAMPLE, REPO
from tests.conftest import CHROMIUM_ARGS, require_chromium, require_module

ARTIFACTS = REPO / "tests" / "artifacts"
ARGS = CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser():
    playwright = require_module("playwright.sync_api")
    executable = require_chromium()
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=ARGS)
        yield chromium
        chromium.close()


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_email_fits_desktop_and_phone_widths(browser, compose_ws: Path, settings: Settings,
                                             lang: str) -> None:
    out = compose_ws / "preview"
    write_preview(compose_ws, EXAMPLE, settings, [lang], out)
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (600, 375):
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto((out / f"{lang}.html").as_uri())
        page.wait_for_load_state("load")
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.getAttribute('alt'), i.naturalWidth])")
        overflowing = page.evaluate("""Array.from(document.querySelectorAll('body *'))
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .map(e => e.tagName).slice(0, 5)""")
        page.screenshot(path=str(ARTIFACTS / f"compose-{lang}-{width}.png"), full_page=True)
        page.close()
        assert scroll_width <= width, f"{lang} at {width}px scrolls sideways: {overflowing}"
        assert not overflowing
        assert images and all(alt is not None for alt, _ in images)
        assert all(natural > 0 for _, natural in images)  # the image beside the issue loads


STRESS = """### A heading with a [link](https://example.org/a)

1. Ordered, with a nested list:
   - an item long enough to wrap several times on a phone held upright in one hand

```
A_very_long_code_line_without_any_spaces_that_goes_on_and_on_and_on_and_on_and_on
```

https://example.org/a/very/long/url/that/has/no/spaces/at/all/and/keeps/going/and/going

| a | b | c | d | e | f |
|---|---|---|---|---|---|
|Internationalisation|Responsibilities|Accountability|Documentation|Participation|Visibility|
"""


@pytest.mark.browser
def test_wide_tables_code_and_urls_do_not_overflow_a_phone(browser, make_issue, compose_ws: Path,
                                                           settings: Settings) -> None:
    make_issue("stress", {"en.md": STRESS})
    out = compose_ws / "preview"
    write_preview(compose_ws, "stress", settings, ["en"], out)
    page = browser.new_page(viewport={"width": 375, "height": 900})
    page.goto((out / "en.html").as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.close()
