"""`issue check` reports every problem of every kind in one run, and says how to fix bad TOML."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli.main import cli
from tests.compose.conftest import edition


def _check(compose_ws: Path, slug: str = "broken") -> tuple[int, list[tuple[str, int | None]]]:
    result = CliRunner().invoke(cli, ["-w", str(compose_ws), "issue", "check", slug, "--json"])
    data = json.loads(result.output)
    return result.exit_code, [(f["rule"], f["file"], f["line"], f["message"])
                              for f in data["findings"]]


def test_front_matter_placeholders_and_images_are_all_reported_in_one_run(
        make_issue, compose_ws) -> None:
    body = ("Dear {{ subscriber.name }},\n\n![](https://example.org/a.png)\n\n"
            "And {{ whoever }} too.\n\n![Map](missing.png)\n")
    make_issue(files={
        "en.md": '+++\ntitle = "Coalition update"\nsubject = Hello world\n+++\n\n' + body,
        "fr.md": edition(body, extra='colour = "red"\n'),
    })
    code, found = _check(compose_ws)
    assert code == 1
    rules = {(rule, file, line) for rule, file, line, _m in found}
    for lang, first in (("en", 6), ("fr", 8)):
        shown = f"issues/broken/{lang}.md"
        assert {("markdown-error", shown, first), ("markdown-error", shown, first + 4),
                ("image-without-alt", shown, first + 2),
                ("broken-image", shown, first + 6)} <= rules
    assert ("front-matter", "issues/broken/en.md", 3) in rules
    assert ("front-matter", "issues/broken/fr.md", 5) in rules
    assert len(found) == len(set(found))  # a placeholder found twice is shown once


def test_an_unquoted_subject_gets_the_line_to_write(make_issue, compose_ws) -> None:
    make_issue(files={"en.md": '+++\ntitle = "T"\nsubject = Hello world\n+++\n\nBody\n'})
    _code, found = _check(compose_ws)
    messages = [m for rule, _f, line, m in found if rule == "front-matter" and line == 3]
    assert messages and messages[0].endswith('write subject = "Hello world"')


def test_bad_values_in_issue_toml_are_fixed_by_quoting(make_issue, compose_ws) -> None:
    make_issue(files={"en.md": "Body\n"}, issue_toml='list = "news"\ndate = 2026-11-20\n'
               'number = 01\n')
    _code, found = _check(compose_ws)
    assert [(f, line, m.rsplit("; ", 1)[-1]) for rule, f, line, m in found
            if rule == "front-matter"] == [("issues/broken/issue.toml", 3, 'write number = "01"')]


def test_an_unclosed_quote_gets_the_closed_string(make_issue, compose_ws) -> None:
    make_issue(files={"en.md": '+++\ntitle = "Coalition update\n+++\n\nBody\n'})
    _code, found = _check(compose_ws)
    assert any(m.endswith('write title = "Coalition update"') for *_x, m in found)


def test_every_bad_key_of_a_file_is_reported_not_only_the_first(make_issue, compose_ws) -> None:
    make_issue(files={"en.md": edition("Body\n", extra='colour = "red"\ndate = "20 Nov"\n')})
    _code, found = _check(compose_ws)
    assert [line for rule, _f, line, _m in found if rule == "front-matter"] == [5, 6]


def test_the_text_output_lists_every_problem(make_issue, compose_ws) -> None:
    make_issue(files={"en.md": '+++\ntitle = "T"\nsubject = Hi there\n+++\n\n![](x.png)\n'})
    result = CliRunner().invoke(cli, ["-w", str(compose_ws), "issue", "check", "broken"])
    assert "issues/broken/en.md:3: error front-matter:" in result.output
    assert "issues/broken/en.md:6: error image-without-alt:" in result.output
    assert "issues/broken/en.md:6: error broken-image:" in result.output
    assert "Traceback" not in result.output
