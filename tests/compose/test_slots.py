"""Recipient slots: the placeholder syntax, fallbacks, and escaping per part."""

from __future__ import annotations

import html
import re

import pytest

from newsletter.compose.checks import RULES
from newsletter.compose.slots import (
    SLOT_KEYS,
    Shell,
    Slots,
    SlotTable,
    UnknownPlaceholder,
    resolve_values,
    substitute_placeholders,
)
from tests.compose.conftest import REPO


def test_placeholders_accept_spacing_quotes_and_attributes() -> None:
    table = SlotTable()
    text = substitute_placeholders(
        "{{name}} {{ name | default('you') }} {{ attr.org-name }} {{ web_url }}", table)
    assert re.fullmatch(r"qxslot0xq qxslot1xq qxslot2xq qxslot3xq", text)
    assert [(s.key, s.default) for s in table.specs] == [
        ("name", ""), ("name", "you"), ("attr.org-name", ""), ("web_url", "")]


@pytest.mark.parametrize("bad", ["{{ subscriber.name }}", "{{ name | upper }}", "{{ }}",
                                 "{{ email }}"])
def test_anything_else_in_double_braces_is_refused(bad: str) -> None:
    with pytest.raises(UnknownPlaceholder) as caught:
        substitute_placeholders(f"Hello {bad}", SlotTable())
    assert caught.value.offset == 6


def test_shell_fills_html_escaped_and_text_plain() -> None:
    table = SlotTable()
    marker = table.sentinel("name", "friend")
    shell = Shell(f"<p>Hi {marker}!</p><a href='{table.sentinel('unsubscribe_url')}'>x</a>")
    escaped, plain = resolve_values(tuple(table.specs), Slots(name="<i>Bo</i> & co",
                                                              unsubscribe_url="https://u?a&b"))
    assert shell.fill(escaped) == "<p>Hi &lt;i&gt;Bo&lt;/i&gt; &amp; co!</p>" \
        "<a href='https://u?a&amp;b'>x</a>"
    assert plain[0] == "<i>Bo</i> & co"
    assert shell.fill(resolve_values(tuple(table.specs), Slots())[0]).startswith("<p>Hi friend!")


@pytest.mark.parametrize("value", ["Bo", "a & b", "<b>", "x > y", 'say "hi"', "O'Brien",
                                   "&amp;", "Zoë <z@example.org>", ""])
def test_each_value_is_escaped_as_html_escape_does_or_left_as_it_is(value: str) -> None:
    table = SlotTable()
    table.sentinel("name")
    escaped, plain = resolve_values(tuple(table.specs), Slots(name=value))
    assert escaped == [html.escape(value)] and plain == [value]


def test_every_slot_and_rule_is_documented() -> None:
    templates_doc = (REPO / "templates" / "README.md").read_text(encoding="utf-8")
    issues_doc = (REPO / "issues" / "README.md").read_text(encoding="utf-8")
    for key in SLOT_KEYS:
        assert f"{{{{ {key} }}}}" in templates_doc and f"slots.{key}" in templates_doc
    for name, _ in RULES:
        if name != "compile":
            assert f"`{name}`" in issues_doc
    for rule in ("markdown-error", "template-error", "unknown-list", "unused-translation"):
        assert f"`{rule}`" in issues_doc
