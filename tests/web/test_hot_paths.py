"""The fast paths behind preferences pages and one-click POSTs show fresh data and safe text."""

from __future__ import annotations

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import escape
from sqlalchemy import text

from newsletter.audience.language import ListLanguages
from newsletter.audience.preferences import ListChoice, PreferencesView
from newsletter.i18n import LANGUAGES
from newsletter.links import preferences_url, unsubscribe_url
from newsletter.tokens import Signer
from newsletter.web.context import Site
from newsletter.web.pages import (
    TEMPLATES,
    environment,
    language_options,
    list_checkboxes,
    render,
    translator,
)
from tests.conftest import SECRET
from tests.web.conftest import BASE_URL, WebEnv


def test_preferences_page_shows_a_one_click_unsubscribe_at_once(web: WebEnv) -> None:
    list_id = web.add_list(name="Weekly <Digest>")
    sid = web.add_subscriber("ana@example.org", list_id, "confirmed", language="fr")
    signer = Signer(SECRET)
    prefs = preferences_url(BASE_URL, signer, sid, list_id).removeprefix(BASE_URL)
    leave = unsubscribe_url(BASE_URL, signer, sid, list_id).removeprefix(BASE_URL)
    before = web.client.get(prefs)
    assert before.status_code == 200 and " checked" in before.text
    assert "Weekly &lt;Digest&gt;" in before.text and '<html lang="fr">' in before.text
    assert web.client.post(leave, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    after = web.client.get(prefs)
    assert " checked" not in after.text
    assert web.client.post(leave, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert len(web.events("unsubscribe")) == 1


def test_a_removed_subscriber_gets_not_found_on_the_preferences_page(web: WebEnv) -> None:
    list_id = web.add_list()
    sid = web.add_subscriber("gone@example.org", list_id, "confirmed")
    path = preferences_url(BASE_URL, Signer(SECRET), sid, list_id).removeprefix(BASE_URL)
    assert web.client.get(path).status_code == 200
    with web.engine.begin() as conn:
        conn.execute(text("DELETE FROM subscriptions WHERE subscriber_id = :sid"), {"sid": sid})
        conn.execute(text("DELETE FROM subscribers WHERE id = :sid"), {"sid": sid})
    assert web.client.get(path).status_code == 404


def test_pretranslated_templates_match_translation_at_render_time(web: WebEnv) -> None:
    site = Site.from_settings(web.settings)
    for language in ("en", "fr", "es"):
        context = {"site": site, "languages": ("en",), "here": "/x"}
        page = render("error.html", language, title="Not allowed", message="Not allowed", **context)
        skip = str(escape(translator(language)("Skip to content")))
        assert f'<html lang="{language}">' in page and f'href="#main">{skip}</a>' in page
    french = render("one_click.html", "fr")
    assert "You are unsubscribed" not in french and '<html lang="fr">' in french


def test_pages_prepared_at_load_time_read_as_if_translated_at_render_time(web: WebEnv) -> None:
    """Placeholders, the site's name and base.html are written into page templates when they
    load; a subscriber must see exactly what plain Jinja with `_` at render time shows."""
    site = Site.from_settings(web.settings)
    choices = (
        ListChoice(1, "news", "Weekly <Digest> & Co", 'say "hi"', True, "confirmed",
                   ListLanguages(("en", "fr"), "en")),
        ListChoice(2, "events", "Events", "", False, None, ListLanguages(("es",), "es")),
    )
    view = PreferencesView(7, "o'neil&co@example.org", '<Ann> "A"', None, choices)
    pages = {
        "preferences.html": {"email": view.email, "name": view.name, "has_lists": True,
                             "csrf": "a.b", "saved": True, "error": "",
                             "language_options": language_options(site, ("en", "fr"), "fr"),
                             "list_checkboxes": list_checkboxes(site, choices)},
        "unsubscribe.html": {"list_name": "<News> & Co", "preferences_url": "/p?a=1&b=2"},
        "unsubscribed.html": {
            "everything": False,
            "list_name": "<News> & Co",
            "preferences_url": "/p",
        },
        "error.html": {"title": "Page not found", "message": "Check the link."},
    }
    plain = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",)),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    for language in LANGUAGES:
        common = {
            "_": translator(language),
            "lang": language,
            "site": site,
            "languages": LANGUAGES,
            "here": "/preferences/x?y=<z>",
        }
        prepared = environment(language, site.template_key)
        for name, values in pages.items():
            expected = plain.get_template(name).render(**common, **values)
            assert prepared.get_template(name).render(**common, **values) == expected


def test_the_language_choice_reads_as_the_templates_own_loop_wrote_it() -> None:
    """The preferences page's language <select> is built once per site and choice; a subscriber
    must get the markup the template's loop gave: each offered code with its name, escaped,
    and the chosen one selected."""
    site = Site(name="N", base_url=BASE_URL, language_names={"en": "English", "fr": "<Fr> & co"})
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    loop = env.from_string(
        '    <select id="language" name="language">\n'
        "    {% for code in codes %}\n"
        '      <option value="{{ code }}" lang="{{ code }}"{% if code == chosen %} selected'
        "{% endif %}>{{ site.language_names.get(code, code) }}</option>\n"
        "    {% endfor %}\n"
        "    </select>\n"
    )
    built = env.from_string(
        '    <select id="language" name="language">\n      {{ options }}\n    </select>\n'
    )
    codes = ("en", "fr", "x<y")
    for chosen in codes:
        expected = loop.render(codes=codes, chosen=chosen, site=site)
        for _ in range(2):  # built, then from the site's cache
            options = language_options(site, codes, chosen)
            assert built.render(options=options) == expected
    assert "&lt;Fr&gt; &amp; co" in expected and 'value="x&lt;y"' in expected


def test_the_list_checkboxes_read_as_the_templates_own_loop_wrote_them() -> None:
    """Each list's checkbox is built once per site; a subscriber must get the markup the
    template's loop gave: names and descriptions escaped, their own lists checked."""
    site = Site(name="N", base_url=BASE_URL)
    choices = (
        ListChoice(1, "news", "Weekly <Digest> & Co", 'say "hi"', True, "confirmed"),
        ListChoice(2, "events", "Events", "", False, None),
    )
    loop = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string(
        "  <fieldset>\n"
        "    {% for choice in lists %}\n"
        '    <div class="check">\n'
        '      <input type="checkbox" id="list-{{ choice.id }}" name="list" '
        'value="{{ choice.id }}"{% if choice.subscribed %} checked{% endif %}>\n'
        '      <label for="list-{{ choice.id }}">{{ choice.name }}{% if choice.description %} '
        '<span class="hint">{{ choice.description }}</span>{% endif %}</label>\n'
        "    </div>\n"
        "    {% endfor %}\n"
        "  </fieldset>\n"
    )
    built = Environment(autoescape=True).from_string(
        "  <fieldset>\n    {{ boxes }}\n  </fieldset>\n"
    )
    for lists in (choices, choices[::-1], choices[1:]):
        expected = loop.render(lists=lists)
        for _ in range(2):  # built, then from the site's cache
            assert built.render(boxes=list_checkboxes(site, lists)) == expected
    first = loop.render(lists=choices)
    assert "Weekly &lt;Digest&gt; &amp; Co" in first and "say &#34;hi&#34;" in first
