"""`issue check`: each rule catches its problem in a broken example issue, with file and line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.compose import check_issue, load_issue
from newsletter.config import Settings
from tests.compose.conftest import EXAMPLE, edition


def _findings(compose_ws: Path, settings: Settings, slug: str = "broken",
              languages: list[str] | None = None) -> list[tuple[str, str, str, int | None]]:
    report = check_issue(load_issue(compose_ws, slug), settings, languages or ["en"])
    return [(f.severity, f.rule, f.file, f.line) for f in report.findings]


def test_example_issue_passes_every_check(compose_ws: Path, settings: Settings) -> None:
    report = check_issue(load_issue(compose_ws, EXAMPLE), settings, ["en", "fr", "es"],
                         now=datetime(2026, 11, 20, tzinfo=UTC))  # its events still ahead
    assert report.ok and report.findings == []


def test_missing_translation_is_an_error(compose_ws: Path, settings: Settings) -> None:
    report = check_issue(load_issue(compose_ws, EXAMPLE), settings, ["en", "fr", "es", "ar"])
    assert not report.ok
    finding = report.findings[0]
    assert (finding.rule, finding.severity) == ("missing-translation", "error")
    assert finding.format().startswith(f"issues/{EXAMPLE}/ar.md: error missing-translation:")


def test_unknown_list_is_reported(compose_ws: Path, settings: Settings) -> None:
    report = check_issue(load_issue(compose_ws, EXAMPLE), settings, None)
    assert [f.rule for f in report.findings] == ["unknown-list"] and report.ok


def test_subject_and_preheader_lengths(make_issue, compose_ws, settings) -> None:
    long_subject = "A subject that goes on and on about everything the coalition did this month"
    make_issue(files={"en.md": edition("Body\n", subject=long_subject, preheader="Short")})
    found = _findings(compose_ws, settings)
    assert ("warning", "subject-length", "issues/broken/en.md", 3) in found
    assert ("warning", "preheader-length", "issues/broken/en.md", 4) in found


def test_empty_subject_is_an_error(make_issue, compose_ws, settings) -> None:
    make_issue(files={"en.md": '+++\ntitle = "T"\nsubject = " "\n+++\nBody\n'})
    assert ("error", "subject-length", "issues/broken/en.md", 3) in _findings(compose_ws, settings)


def test_image_without_alt(make_issue, compose_ws, settings) -> None:
    make_issue(files={"en.md": "Intro.\n\n![](https://example.org/a.png)\n\n"
                               "![](https://example.org/line.png){.decorative}\n"})
    found = _findings(compose_ws, settings)
    assert found.count(("error", "image-without-alt", "issues/broken/en.md", 9)) == 1
    assert not [f for f in found if f[1] == "image-without-alt" and f[3] == 11]


def test_insecure_links_and_images(make_issue, compose_ws, settings) -> None:
    make_issue(files={"en.md": "See [the list](http://example.org/list)\nand more.\n\n"
                               "![A map](http://example.org/map.png)\n"})
    found = _findings(compose_ws, settings)
    assert ("warning", "insecure-link", "issues/broken/en.md", 7) in found
    assert ("warning", "insecure-link", "issues/broken/en.md", 10) in found


def test_broken_relative_link_and_image(make_issue, compose_ws, settings) -> None:
    folder = make_issue(files={"en.md": (
        "Read [the statement](statement.pdf) and [the annex](annex.pdf).\n\n"
        "![A photo of the meeting](missing.jpg)\n\n![The logo](../../newsletter.toml)\n")})
    (folder / "statement.pdf").write_bytes(b"%PDF-1.4\n")
    found = _findings(compose_ws, settings)
    assert ("error", "broken-link", "issues/broken/en.md", 7) in found
    assert sum(f[1] == "broken-link" for f in found) == 1  # statement.pdf exists
    assert ("error", "broken-image", "issues/broken/en.md", 9) in found
    assert ("error", "broken-image", "issues/broken/en.md", 11) in found  # outside the issue


def test_html_too_large_for_gmail(make_issue, compose_ws, settings) -> None:
    paragraph = "The coalition met again to discuss the regional review. " * 20
    make_issue(files={"en.md": "\n\n".join([paragraph] * 100)})
    found = _findings(compose_ws, settings)
    assert ("error", "html-too-large", "issues/broken/en.md", None) in found


def test_markdown_error_reported_as_finding(make_issue, compose_ws, settings) -> None:
    make_issue(files={"en.md": "Dear {{ frist_name }},\n"})
    assert ("error", "markdown-error", "issues/broken/en.md", 7) in _findings(compose_ws, settings)


def test_template_error_reported_as_finding(make_issue, compose_ws, settings) -> None:
    folder = make_issue(files={"en.md": "Body\n"})
    footer = folder / "templates" / "email" / "partials" / "footer.mjml.j2"
    footer.parent.mkdir(parents=True)
    footer.write_text("<mj-section>\n<mj-column>\n<mj-text>{{ _('x') }} {{ no_such }}</mj-text>\n"
                      "</mj-column>\n</mj-section>\n", encoding="utf-8")
    shown = "issues/broken/templates/email/partials/footer.mjml.j2"
    assert ("error", "template-error", shown, 3) in _findings(compose_ws, settings)


def test_mjml_warnings_in_a_workspace_template(make_issue, compose_ws, settings) -> None:
    make_issue(files={"en.md": "Body\n"})
    header = compose_ws / "templates" / "email" / "partials" / "header.mjml.j2"
    header.parent.mkdir(parents=True)
    header.write_text('<mj-section>\n<mj-column>\n<mj-image src="https://example.org/l.png" />\n'
                      "<mj-txt>Hi</mj-txt>\n</mj-column>\n</mj-section>\n", encoding="utf-8")
    found = _findings(compose_ws, settings)
    shown = "templates/email/partials/header.mjml.j2"
    assert ("warning", "mjml-warning", shown, 3) in found  # no alt
    assert ("warning", "mjml-warning", shown, 4) in found  # unknown tag


def _check_json(compose_ws: Path, slug: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["-w", str(compose_ws), "issue", "check", slug, "--json"])
    return result.exit_code, json.loads(result.output)


def test_cli_check_json_and_exit_status(make_issue, compose_ws) -> None:
    code, data = _check_json(compose_ws, EXAMPLE)
    assert code == 0 and data["ok"] and data["errors"] == 0
    assert [f["rule"] for f in data["findings"]] == ["unknown-list"]  # no database here
    make_issue(files={"en.md": "![](nothing.png)\n"})
    code, data = _check_json(compose_ws, "broken")
    assert code == 1 and not data["ok"]
    assert {f["rule"] for f in data["findings"]} >= {"image-without-alt", "broken-image"}


def test_cli_check_reports_bad_front_matter_as_a_finding(make_issue, compose_ws) -> None:
    make_issue(files={"en.md": '+++\ntitle = "A\n+++\nBody\n'})
    code, data = _check_json(compose_ws, "broken")
    assert code == 1
    assert data["findings"][0]["file"] == "issues/broken/en.md"
    assert data["findings"][0]["line"] == 2


def test_cli_check_text_output_names_file_line_severity_rule(make_issue, compose_ws) -> None:
    make_issue(files={"en.md": "Go to [the site](http://example.org).\n"})
    result = CliRunner().invoke(cli, ["-w", str(compose_ws), "issue", "check", "broken"])
    assert "issues/broken/en.md:7: warning insecure-link: link uses http://" in result.output
    assert result.exit_code == 0
