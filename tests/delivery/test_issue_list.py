"""`issue list` and `issue translated` against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from tests.delivery.sender_fixtures import configure, seed, write_issue


def test_issue_list_shows_status_languages_date_and_counts(
        run, workspace, db_url, smtp_server) -> None:
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en", "fr", "es", "en"])
    run.json("send", "nov", "--yes")
    run.json("issue", "new", "dec", "--from", "nov")
    broken = workspace / "issues" / "draft-with-typo"
    broken.mkdir()
    (broken / "en.md").write_text('+++\nsubject = Oops\ndate = 2026-12-01\n+++\nBody\n', "utf-8")
    rows = {r["slug"]: r for r in run.json("issue", "list")}
    assert set(rows) == {"nov", "dec", "draft-with-typo"}
    assert rows["nov"]["status"] == "sent" and rows["nov"]["date"] == "2026-11-20"
    assert rows["nov"]["languages"] == ["en", "es", "fr"]
    assert rows["nov"]["counts"] == {"sent": 4} and rows["nov"]["deliveries"] == 4
    assert rows["dec"] == {"slug": "dec", "status": "draft", "languages": ["en", "es", "fr"],
                           "date": None, "folder": True, "deliveries": 0, "counts": {},
                           "rolled_up": None}
    assert rows["draft-with-typo"]["languages"] == ["en"]
    text = run("issue", "list").output
    assert "nov" in text and "sent" in text and "draft" in text


def test_issue_list_keeps_a_sent_issue_whose_folder_was_removed(
        run, workspace, db_url, smtp_server) -> None:
    import shutil

    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace, languages=("en",))
    seed(workspace, ["en", "en"], list_languages=("en",))
    run.json("send", "nov", "--yes")
    shutil.rmtree(workspace / "issues" / "nov")
    [row] = run.json("issue", "list")
    assert (row["slug"], row["status"], row["folder"], row["counts"]) == (
        "nov", "sent", False, {"sent": 2})


def test_translated_defaults_to_the_lists_language(run, workspace, db_url, smtp_server) -> None:
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, [], default_language="fr")
    data = run.json("issue", "translated", "nov", "--lang", "en")
    assert data["source"] == "fr"
    front = (workspace / "issues" / "nov" / "en.md").read_text("utf-8").split("+++")[1]
    assert 'translated_from = { source = "fr", sections = ["' in front
