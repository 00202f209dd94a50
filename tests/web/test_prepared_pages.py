"""Pages filled in from pieces rendered once (web/prepared.py) read exactly as a full render."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import escape
from starlette.requests import Request

from newsletter.audience.language import ListLanguages
from newsletter.audience.preferences import ListChoice
from newsletter.i18n import LANGUAGES
from newsletter.web.context import Site
from newsletter.web.pages import environment, language_options, list_checkboxes, translator
from newsletter.web.prepared import prepared_page


def _request(site: Site, path: str) -> Request:
    app = SimpleNamespace(state=SimpleNamespace(web=SimpleNamespace(site=site)))
    return Request({"type": "http", "method": "GET", "path": path, "query_string": b"",
                    "headers": [], "app": app})


def _full(site: Site, language: str, **context: Any) -> str:
    local = site.for_language(language)
    return environment(language, local.template_key).get_template("preferences.html").render(
        _=translator(language), lang=language, site=local, languages=LANGUAGES, **context)


def test_each_subscriber_gets_their_own_escaped_data_in_every_language() -> None:
    site = Site(name="News & <Co>", base_url="http://example.org")
    lists = (ListChoice(1, "news", "Weekly <Digest>", 'say "hi"', True, "confirmed",
                        ListLanguages(("en", "fr"), "en")),)
    people = [("o'neil&co@example.org", '<Ann> "A"', "a.b", "/preferences/AAA"),
              ("bob@example.org", "", "c.d", "/preferences/BBB"),
              ("eve@example.org", "Eve </form>", "e.f", "/preferences/C<C")]
    for language in ("en", "fr", "es"):
        local = site.for_language(language)
        options = language_options(local, ("en", "fr"), "fr")
        boxes = list_checkboxes(local, lists)
        for saved in (False, True):
            for email, name, csrf, path in people:
                page = prepared_page(
                    _request(site, path), local, "preferences.html", language,
                    fixed={"saved": saved, "error": "", "has_lists": True},
                    email=email, name=name, csrf=csrf, language_options=options,
                    list_checkboxes=boxes)
                expected = _full(site, language, saved=saved, error="", has_lists=True,
                                 email=email, name=name, csrf=csrf, language_options=options,
                                 list_checkboxes=boxes, here=_request(site, path).url.path)
                assert page.body.decode() == expected


def test_a_template_that_tests_a_value_is_rendered_in_full_each_time() -> None:
    site = Site(name="News", base_url="http://example.org")
    greeting = "{% if name %}Hi {{ name }}{% endif %}!"
    site.for_language("en").cache["greeting.html"] = Environment(
        autoescape=True, undefined=StrictUndefined).from_string(greeting)
    request = _request(site, "/x")
    local = site.for_language("en")
    first = prepared_page(request, local, "greeting.html", "en", fixed={}, name="<Ann>")
    second = prepared_page(request, local, "greeting.html", "en", fixed={}, name="")
    assert (first.body, second.body) == (b"Hi &lt;Ann&gt;!", b"!")


def test_text_is_escaped_as_jinja_escapes_it() -> None:
    site = Site(name="N", base_url="http://e.org")
    site.for_language("en").cache["one.html"] = Environment(autoescape=True).from_string(
        "{{ email }}")
    text = "a&b<c>d'e\"f &amp; \u00e9\u2014"
    page = prepared_page(_request(site, "/x"), site.for_language("en"), "one.html", "en",
                         fixed={}, email=text)
    assert page.body.decode() == str(escape(text))
