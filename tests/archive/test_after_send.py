"""End to end: subscribers, `newsletter send` to a real SMTP server, then `archive build`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.archive.conftest import EMAIL_RE, Sink, site_files
from tests.conftest import write_config

EXAMPLES = Path(__file__).resolve().parents[2] / "issues"
NEWSLETTER = str(Path(sys.executable).with_name("newsletter"))


def send(workspace: Path, *args: str) -> None:
    """`newsletter send` in its own process, so a stuck sender fails this test, not the run."""
    done = subprocess.run([NEWSLETTER, "-w", str(workspace), "send", *args, "--yes"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr + done.stdout


@pytest.mark.slow
def test_an_issue_sent_through_smtp_is_archived_in_the_languages_it_went_out_in(
    run, workspace: Path, db_url: str, smtp_sink: tuple[int, Sink]
) -> None:
    port, sink = smtp_sink
    write_config(workspace, db_url, f"[smtp]\nport = {port}\n")
    example = next(p for p in sorted(EXAMPLES.iterdir()) if (p / "en.md").exists())
    shutil.copytree(example, workspace / "issues" / example.name)
    run("lists", "add", "news", "--name", "Coalition News", "--languages", "en,fr,es",
        "--default-language", "en")
    readers = {"amina@example.org": "en", "jean@example.org": "fr", "marie@example.org": "fr"}
    for address, language in readers.items():
        run("subscribers", "add", address, "--list", "news", "--language", language,
            "--confirmed", "--consent-source", "test")

    send(workspace, example.name, "--test-to", "editor@example.org")
    assert sink.recipients == ["editor@example.org"] * 3
    nothing = run.json("archive", "build")
    assert nothing["editions"] == 0 and nothing["languages"] == []

    send(workspace, example.name)
    assert sorted(sink.recipients[3:]) == sorted(readers)
    report = run.json("archive", "build")
    assert report["languages"] == ["en", "fr"] and report["editions"] == 2
    out = Path(report["out"])
    pages = {f for f in site_files(out) if f.endswith("/index.html") and f.count("/") == 3}
    assert pages == {f"en/2026/{example.name}/index.html", f"fr/2026/{example.name}/index.html"}
    for rel, path in site_files(out).items():
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not EMAIL_RE.search(text), (rel, EMAIL_RE.search(text))
