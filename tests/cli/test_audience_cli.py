"""The lists and subscribers commands, driven as a user would, through --json."""

from __future__ import annotations

import csv
import io

from tests.conftest import Cli


def make_list(run: Cli) -> None:
    run("lists", "add", "news", "--name", "Coalition News", "--languages", "en,fr,es",
        "--default-language", "en")


def test_lists_add_then_list_as_json(run):
    make_list(run)
    run("lists", "add", "board", "--name", "Board", "--languages", "en", "--private",
        "--single-opt-in")
    data = run.json("lists", "list")
    assert [d["slug"] for d in data] == ["board", "news"]
    news = data[1]
    assert news["languages"] == ["en", "fr", "es"]
    assert news["default_language"] == "en"
    assert news["name"] == "Coalition News"
    assert data[0]["opt_in"] == "single" and data[0]["public"] is False


def test_duplicate_list_and_bad_default_language_fail_with_one_line(run):
    make_list(run)
    result = run("lists", "add", "news", "--name", "Again", ok=False)
    assert result.exit_code == 1
    assert "already exists" in result.output
    result = run("lists", "add", "other", "--name", "O", "--languages", "en,fr",
                 "--default-language", "es", ok=False)
    assert result.exit_code == 1 and "not among" in result.output
    assert "Traceback" not in result.output


def test_subscribers_add_list_filter_and_show_counts(run):
    make_list(run)
    run("subscribers", "add", "Amina@Example.org", "--list", "news", "--name", "Amina",
        "--language", "fr", "--confirmed", "--consent-source", "form")
    run("subscribers", "add", "carlos@example.org", "--list", "news", "--language", "es")
    rows = run.json("subscribers", "list", "--list", "news")
    assert [(r["email"], r["language"], r["status"]) for r in rows] == [
        ("amina@example.org", "fr", "confirmed"),
        ("carlos@example.org", "es", "pending"),
    ]
    assert [r["email"] for r in run.json("subscribers", "list", "--language", "es")] == [
        "carlos@example.org"]
    assert run.json("lists", "show", "news")["counts"] == {
        "pending": 1, "confirmed": 1, "unsubscribed": 0}


def test_confirmed_without_source_and_unknown_list_are_refused(run):
    make_list(run)
    result = run("subscribers", "add", "a@example.org", "--list", "news", "--confirmed",
                 ok=False)
    assert result.exit_code == 1 and "--consent-source" in result.output
    result = run("subscribers", "add", "a@example.org", "--list", "nope", ok=False)
    assert result.exit_code == 1 and "no list 'nope'" in result.output
    result = run("subscribers", "add", "not an address", "--list", "news", ok=False)
    assert result.exit_code == 1 and "invalid email address" in result.output


def test_import_report_names_lines_and_exit_code_follows_strict(run, tmp_path):
    make_list(run)
    path = tmp_path / "in.csv"
    path.write_text("email,name\na@example.org,A\nbroken,B\n", encoding="utf-8")
    result = run("subscribers", "import", str(path), "--list", "news")
    assert f"{path}:3: rejected broken" in result.output
    assert "1 accepted, 1 rejected" in result.output
    strict = run("subscribers", "import", str(path), "--list", "news", "--strict", ok=False)
    assert strict.exit_code == 1
    report = run.json("subscribers", "import", str(path), "--list", "news", "--dry-run")
    assert report["unchanged"] == 1 and report["errors"][0]["line"] == 3


def test_export_neutralizes_formula_cells(run, tmp_path):
    make_list(run)
    run("subscribers", "add", "a@example.org", "--list", "news", "--name", "-2+3")
    run("subscribers", "add", "b@example.org", "--list", "news", "--name", "@admin")
    out = tmp_path / "out.csv"
    run("subscribers", "export", "--list", "news", "--output", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["name"] for r in rows] == ["'-2+3", "'@admin"]


def test_remove_from_list_then_erase(run):
    make_list(run)
    run("subscribers", "add", "a@example.org", "--list", "news")
    run("subscribers", "remove", "a@example.org", "--list", "news")
    assert run.json("subscribers", "list")[0]["status"] == "unsubscribed"
    result = run("subscribers", "remove", "a@example.org")
    assert "erased" in result.output
    assert run.json("subscribers", "list") == []
    again = run("subscribers", "add", "a@example.org", "--list", "news", ok=False)
    assert "suppressed" in again.output
