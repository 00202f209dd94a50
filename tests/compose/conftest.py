"""Fixtures for the composer: a database-free workspace holding the example issue, and factories."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "2026-11-coalition-update"
CONFIG = """[newsletter]
name = "Coalition News"
organisation = "Civil Society Coalition on Migration"
postal_address = "Rue de l'Exemple 1, 1202 Geneva, Switzerland"
base_url = "https://news.example.org"
secret_key = "compose-test-secret"
social_links = ["https://mastodon.social/@coalition", "https://www.facebook.com/coalition"]

[database]
url = "sqlite:///{db}"
"""


@pytest.fixture
def compose_ws(tmp_path: Path) -> Path:
    """A workspace (no database) with the example issue copied in."""
    ws = tmp_path / "ws"
    (ws / "templates").mkdir(parents=True)
    shutil.copytree(REPO / "issues" / EXAMPLE, ws / "issues" / EXAMPLE)
    (ws / "newsletter.toml").write_text(CONFIG.format(db=tmp_path / "absent.db"), encoding="utf-8")
    return ws


@pytest.fixture
def settings(compose_ws: Path) -> Settings:
    """Settings of the compose workspace, ignoring the caller's NEWSLETTER_* environment."""
    return load_settings(compose_ws, environ={})


IssueFactory = Callable[..., Path]


@pytest.fixture
def make_issue(compose_ws: Path) -> IssueFactory:
    """Write issues/<slug>/ from a dict of file name -> text (front matter added when absent)."""

    def make(slug: str = "broken", files: dict[str, str] | None = None,
             issue_toml: str = 'list = "news"\ndate = 2026-11-20\n') -> Path:
        folder = compose_ws / "issues" / slug
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "issue.toml").write_text(issue_toml, encoding="utf-8")
        for name, text in (files or {}).items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith(".md") and not text.startswith("+++"):
                text = edition(text)
            path.write_text(text, encoding="utf-8")
        return folder

    return make


def edition(body: str, subject: str = "Our joint statement is open for sign-on",
            preheader: str = "Updates from members, a statement to sign and December's dates.",
            extra: str = "") -> str:
    """A language file with sensible front matter around `body`."""
    return (f'+++\ntitle = "Coalition update"\nsubject = "{subject}"\n'
            f'preheader = "{preheader}"\n{extra}+++\n\n{body}')
