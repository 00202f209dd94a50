"""Hostile issue files: `issue check` gives clear one-line findings, previews stay safe HTML.

Each file in tests/data/hostile/markdown/ is one attack or accident: `NAME.md` becomes en.md of
an issue (beside a plain issue.toml), `NAME.issue.toml` becomes its issue.toml (beside a plain
en.md). The workspace has no database, as when an editor checks an issue on their laptop.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import lxml.html
import pytest

from tests.conftest import Cli

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile" / "markdown"
PLAIN_EN = ('+++\ntitle = "Coalition news"\nsubject = "Coalition news, November"\n'
            'preheader = "What happened this month in the coalition and beyond"\n+++\n\nHello.\n')
PLAIN_TOML = 'list = "news"\ndate = 2026-11-20\n'
FINDING = re.compile(r"issues/hostile(/[\w.-]+)?(:\d+)?: (error|warning) [a-z-]+: \S.*")
SUMMARY = re.compile(r"\d+ error\(s\), \d+ warning\(s\): (ok|not ready to send)")
# name -> (exit code of `issue check`, text its output must contain)
VERDICTS: dict[str, tuple[int, str]] = {
    "allow-raw-html-wrong-type.issue.toml": (1, "allow_raw_html: unexpected value 'true'"),
    "bidi-and-zero-width.md": (1, "error one-line-text: subject contains a line break"),
    "bom-and-crlf.md": (0, "0 error(s)"),
    "deeply-nested-emphasis.md": (1, "error broken-link: 'y'"),
    "deeply-nested-lists.md": (0, "0 error(s)"),
    "deeply-nested-quotes.md": (0, "0 error(s)"),
    "huge-body.md": (1, "error html-too-large"),
    "huge-date.issue.toml": (1, "date: expected YYYY-MM-DD"),
    "huge-subject.md": (0, "warning subject-length: subject is 30000 characters"),
    "invalid-toml.issue.toml": (1, "issue.toml:1: error front-matter: invalid front matter"),
    "invalid-toml.md": (1, "en.md:2: error front-matter: invalid front matter"),
    "invalid-utf8.md": (1, "not valid UTF-8"),
    "javascript-links.md": (1, "error broken-link: 'java%09script:alert(1)'"),
    "list-with-newline.issue.toml": (1, "is not a list slug"),
    "nul-in-body.md": (0, "0 error(s)"),
    "nul-in-front-matter.md": (1, "invalid front matter: Illegal character"),
    "raw-html-script.md": (0, "0 error(s)"),
    "subject-crlf.md": (1, "en.md:3: error one-line-text: subject contains a line break"),
    "subject-encoded-word.md": (0, "warning one-line-text: subject contains text like an"),
    "template-injection.md": (1, "unknown placeholder"),
    "title-multiline-string.md": (1, "en.md:2: error one-line-text: title contains a line"),
    "unclosed-front-matter.md": (1, "front matter is never closed"),
    "unknown-key.issue.toml": (1, "unknown key 'allow_raw_html\\x00'"),
    "yaml-front-matter.md": (1, "not YAML between ---"),
}
UNSAFE_ELEMENTS = {"script", "iframe", "object", "embed", "form", "input", "frame", "applet"}


def test_the_corpus_is_every_file_of_the_folder_and_has_at_least_ten() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(VERDICTS)
    assert len(VERDICTS) >= 10


def hostile_issue(tmp_path: Path, name: str) -> Path:
    """A database-less workspace whose issue `hostile` holds the corpus file `name`."""
    ws = tmp_path / "ws"
    folder = ws / "issues" / "hostile"
    folder.mkdir(parents=True)
    (ws / "newsletter.toml").write_text(
        '[newsletter]\nbase_url = "https://news.example.org"\n'
        'secret_key = "hostile-secret-key-0123456789"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "absent.db"}"\n', encoding="utf-8")
    toml, en = (CORPUS / name, None) if name.endswith(".issue.toml") else (None, CORPUS / name)
    if toml:
        shutil.copy(toml, folder / "issue.toml")
    else:
        (folder / "issue.toml").write_text(PLAIN_TOML, encoding="utf-8")
    if en:
        shutil.copy(en, folder / "en.md")
    else:
        (folder / "en.md").write_text(PLAIN_EN, encoding="utf-8")
    return ws


def assert_clean_exit(result) -> None:  # noqa: ANN001 - click's Result
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1)
    assert "Traceback" not in result.output


def assert_safe_html(html: str) -> None:
    """No element, attribute, URL or style that runs code in a browser or a mail client."""
    root = lxml.html.document_fromstring(html)
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # comments (MJML's Outlook conditionals)
        assert element.tag.lower() not in UNSAFE_ELEMENTS, element.tag
        for attribute, value in element.attrib.items():
            assert not attribute.lower().startswith("on"), (element.tag, attribute)
            if attribute in ("href", "src", "action", "background"):
                scheme = urlsplit(re.sub(r"[\x00-\x20]", "", value)).scheme.lower()
                assert scheme in ("", "http", "https", "mailto", "tel"), value
            if attribute == "style":
                css = re.sub(r"\s", "", value).lower()
                assert "javascript:" not in css and "expression(" not in css, value


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_issue_check_gives_one_line_findings_and_the_expected_verdict(
        tmp_path: Path, name: str) -> None:
    ws = hostile_issue(tmp_path, name)
    result = Cli(ws)("issue", "check", "hostile", ok=False)
    assert_clean_exit(result)
    expected_exit, expected_text = VERDICTS[name]
    assert result.exit_code == expected_exit, result.output
    assert expected_text in result.output
    *findings, summary = result.output.splitlines()
    assert SUMMARY.fullmatch(summary), summary
    for line in findings:
        assert FINDING.fullmatch(line) and len(line) < 400, line


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_preview_writes_safe_html_or_refuses_in_one_line(tmp_path: Path, name: str) -> None:
    ws = hostile_issue(tmp_path, name)
    out = tmp_path / "out"
    result = Cli(ws)("issue", "preview", "hostile", "--out", str(out), ok=False)
    assert_clean_exit(result)
    if result.exit_code:
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert result.output.startswith("Error: ")
        return
    html = (out / "en.html").read_text(encoding="utf-8")
    assert_safe_html(html)
    text = (out / "en.txt").read_text(encoding="utf-8")
    assert "\x00" not in html and "\x00" not in text
