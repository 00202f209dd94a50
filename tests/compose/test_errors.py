"""Bad Markdown, front matter or templates give one clear error naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.compose import ComposeError, compile_issue, load_issue
from newsletter.config import Settings


def _error(compose_ws: Path, settings: Settings, slug: str = "broken") -> ComposeError:
    with pytest.raises(ComposeError) as caught:
        compile_issue(load_issue(compose_ws, slug), "en", settings)
    return caught.value


def test_invalid_front_matter_names_file_and_line(make_issue, compose_ws, settings) -> None:
    make_issue(files={"en.md": '+++\ntitle = "A"\nsubject = "unterminated\n+++\n\nBody\n'})
    error = _error(compose_ws, settings)
    assert str(error).startswith("issues/broken/en.md:3: invalid front matter")


def test_unclosed_front_matter_is_reported(make_issue, compose_ws, settings) -> None:
    make_issue(files={"en.md": '+++\ntitle = "A"\n\nBody without the closing line\n'})
    error = _error(compose_ws, settings)
    assert "issues/broken/en.md:1: front matter is never closed" in str(error)


def test_unknown_front_matter_key_and_bad_date(make_issue, compose_ws, settings) -> None:
    make_issue(files={"en.md": '+++\ntitle = "A"\nsubjcet = "typo"\n+++\nBody\n'})
    assert "en.md:3: unknown key 'subjcet'" in str(_error(compose_ws, settings))
    make_issue(files={"en.md": '+++\ntitle = "A"\ndate = "20 Nov"\n+++\nBody\n'})
    assert "en.md:3: date: expected YYYY-MM-DD" in str(_error(compose_ws, settings))


def test_unknown_placeholder_names_its_line(make_issue, compose_ws, settings) -> None:
    make_issue(files={"en.md": "First paragraph.\n\nDear {{ subscriber.fullname }},\n"})
    error = _error(compose_ws, settings)
    assert error.file == "issues/broken/en.md" and error.line == 9
    assert "unknown placeholder {{ subscriber.fullname }}" in error.message


def test_missing_template_variable_names_template_and_line(make_issue, compose_ws,
                                                           settings) -> None:
    folder = make_issue(files={"en.md": "Body\n"})
    layout = folder / "templates" / "email" / "partials" / "header.mjml.j2"
    layout.parent.mkdir(parents=True)
    layout.write_text("<mj-section>\n<mj-column>\n<mj-text>{{ newsletter.motto }}</mj-text>\n"
                      "</mj-column>\n</mj-section>\n", encoding="utf-8")
    error = _error(compose_ws, settings)
    assert error.file == "issues/broken/templates/email/partials/header.mjml.j2"
    assert error.line == 3 and "motto" in error.message and error.rule == "template-error"


def test_template_syntax_error_names_template_and_line(make_issue, compose_ws,
                                                       settings) -> None:
    (compose_ws / "templates" / "email").mkdir(parents=True)
    (compose_ws / "templates" / "email" / "base.mjml.j2").write_text(
        "<mjml>\n<mj-body>\n{% for s in sections %}\n</mj-body>\n</mjml>\n", encoding="utf-8")
    make_issue(files={"en.md": "Body\n"})
    error = _error(compose_ws, settings)
    assert error.file == "templates/email/base.mjml.j2" and error.line in (4, 5)
    assert "template syntax error" in error.message


def test_missing_layout_named_in_front_matter(make_issue, compose_ws, settings) -> None:
    make_issue(files={"en.md": '+++\ntitle = "A"\ntemplate = "email/fancy.mjml.j2"\n+++\nBody\n'})
    error = _error(compose_ws, settings)
    assert error.file == "issues/broken/en.md" and error.line == 3
    assert "'email/fancy.mjml.j2' not found" in error.message


def test_raw_html_that_breaks_mjml_names_the_markdown_line(make_issue, compose_ws,
                                                           settings) -> None:
    make_issue(files={"en.md": "Fine.\n\n<div>\n<b>unclosed <i>tags\n\n"},
               issue_toml='list = "news"\ndate = 2026-11-20\nallow_raw_html = true\n')
    error = _error(compose_ws, settings)
    assert error.file == "issues/broken/en.md" and error.line == 9


def test_cli_prints_one_line_not_a_traceback(make_issue, compose_ws) -> None:
    from click.testing import CliRunner

    from newsletter.cli.main import cli

    make_issue(files={"en.md": "Dear {{ nmae }},\n"})
    result = CliRunner().invoke(cli, ["-w", str(compose_ws), "issue", "preview", "broken",
                                      "--out", str(compose_ws / "out")])
    assert result.exit_code == 1
    assert "issues/broken/en.md:7: unknown placeholder {{ nmae }}" in result.output
    assert "Traceback" not in result.output
