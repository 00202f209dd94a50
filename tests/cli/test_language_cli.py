"""`subscribers add` and `subscribers import` accept the same languages (audience/language.py)."""

from __future__ import annotations

import pytest

from tests.conftest import Cli


@pytest.fixture
def en_fr(run: Cli) -> Cli:
    run("lists", "add", "news", "--name", "News", "--languages", "en,fr")
    return run


def _imported(run: Cli, tmp_path, asked: str) -> str | None:
    """The language import stores for a row asking `asked`; None when it rejects the row."""
    path = tmp_path / "one.csv"
    path.write_text(f"email,language\nimp@example.org,{asked}\n", encoding="utf-8")
    report = run.json("subscribers", "import", str(path), "--list", "news")
    if report["errors"]:
        return None
    return {r["email"]: r["language"] for r in run.json("subscribers", "list")}["imp@example.org"]


def _added(run: Cli, asked: str) -> str | None:
    """The language `subscribers add` stores; None when it refuses in one line."""
    result = run("subscribers", "add", "add@example.org", "--list", "news", "--language", asked,
                 ok=False)
    if result.exit_code:
        assert result.output.count("\n") == 1 and "Traceback" not in result.output
        return None
    return {r["email"]: r["language"] for r in run.json("subscribers", "list")}["add@example.org"]


@pytest.mark.parametrize(("asked", "stored"), [
    ("fr", "fr"), ("FR", "fr"), ("fr_CA", "fr"), ("Français", "fr"), ("es", None), ("xx", None),
])
def test_add_and_import_accept_and_refuse_the_same_languages(en_fr, tmp_path, asked, stored):
    assert _added(en_fr, asked) == stored
    assert _imported(en_fr, tmp_path, asked) == stored


def test_add_names_the_offered_languages_when_it_refuses_one(en_fr):
    refused = en_fr("subscribers", "add", "a@example.org", "--list", "news", "--language", "es",
                    ok=False)
    assert refused.exit_code == 1
    assert "language 'es' is not offered by list 'news' (en, fr)" in refused.output
