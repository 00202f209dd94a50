"""The `issue` commands against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
from pathlib import Path

from newsletter.compose import load_issue
from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.links import unsubscribe_url
from newsletter.tokens import Signer
from tests.compose.conftest import EXAMPLE, REPO
from tests.conftest import SECRET


def _add_list(run, languages: str = "en,fr,es") -> None:
    run("lists", "add", "news", "--name", "News", "--languages", languages,
        "--default-language", "en")


def test_check_uses_the_lists_languages(run, workspace: Path) -> None:
    shutil.copytree(REPO / "issues" / EXAMPLE, workspace / "issues" / EXAMPLE)
    _add_list(run, "en,fr,es,pt")
    result = run("issue", "check", EXAMPLE, "--json", ok=False)
    assert result.exit_code == 1
    assert f"issues/{EXAMPLE}/pt.md" in result.output and "missing-translation" in result.output


def test_new_issue_skeleton_checks_clean_once_its_image_exists(run, workspace: Path) -> None:
    _add_list(run)
    data = run.json("issue", "new", "2026-12-update", "--lang", "en,fr,es")
    assert data["files"] == ["issues/2026-12-update/issue.toml", "issues/2026-12-update/en.md",
                             "issues/2026-12-update/fr.md", "issues/2026-12-update/es.md"]
    assert "Titre du numéro" in (workspace / "issues/2026-12-update/fr.md").read_text()
    shutil.copy(REPO / "issues" / EXAMPLE / "regional-meeting.png",
                workspace / "issues/2026-12-update/image.png")
    result = run("issue", "check", "2026-12-update")
    assert "0 error(s)" in result.output
    again = run("issue", "new", "2026-12-update", ok=False)
    assert again.exit_code == 1 and "already exists" in again.output


def test_preview_as_a_subscriber_uses_their_language_name_and_links(run, workspace: Path) -> None:
    shutil.copytree(REPO / "issues" / EXAMPLE, workspace / "issues" / EXAMPLE)
    _add_list(run)
    run("subscribers", "add", "ines@example.org", "--list", "news", "--language", "es",
        "--name", "Inés <b>", "--confirmed", "--consent-source", "test")
    out = workspace / "out"
    result = run("issue", "preview", EXAMPLE, "--as", "ines@example.org", "--out", str(out))
    assert result.output.split() == [str(out / "es.html"), str(out / "es.txt")]
    html = (out / "es.html").read_text()
    assert "Hola, Inés &lt;b&gt;:" in html and (out / "regional-meeting.png").exists()
    assert 'src="regional-meeting.png"' in html
    settings = load_settings(workspace, environ={})
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        sid, lid = conn.exec_driver_sql(
            "SELECT s.id, l.id FROM subscribers s, lists l WHERE s.email='ines@example.org'"
        ).first()
    engine.dispose()
    expected = unsubscribe_url(settings["newsletter"]["base_url"], Signer(SECRET), sid, lid)
    assert expected in (out / "es.txt").read_text()
    assert load_issue(workspace, EXAMPLE).list_slug == "news"


def test_preview_as_unknown_subscriber_is_a_clear_error(run, workspace: Path) -> None:
    shutil.copytree(REPO / "issues" / EXAMPLE, workspace / "issues" / EXAMPLE)
    _add_list(run)
    result = run("issue", "preview", EXAMPLE, "--as", "nobody@example.org", ok=False)
    assert result.exit_code == 1 and "no subscriber 'nobody@example.org'" in result.output
