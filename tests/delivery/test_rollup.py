"""`maintenance --roll-up-after`: old issues keep their counts and lose their delivery rows.

Both engines, a real SMTP server, the CLI as the operator runs it.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select, update

from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.models import Delivery, Issue, utcnow
from tests.delivery.sender_fixtures import configure, seed, write_issue


def _sent_days_ago(workspace, slug: str, days: int) -> None:
    engine = make_engine(load_settings(workspace).database_url)
    with engine.begin() as conn:
        conn.execute(update(Issue).where(Issue.slug == slug)
                     .values(sent_at=utcnow() - timedelta(days=days)))
    engine.dispose()


def _rows(workspace) -> int:
    engine = make_engine(load_settings(workspace).database_url)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(Delivery)).scalar_one()
    engine.dispose()
    return count


def _two_issues(run, workspace, db_url, smtp_server) -> list[str]:
    """'old' sent 200 days ago (one failed delivery), 'new' 10 days ago."""
    configure(workspace, db_url, smtp_server.port)
    emails = seed(workspace, ["en", "fr", "fr", "es", None])
    smtp_server.reply_for = lambda rcpt, n: "550 5.1.1 no such user" if rcpt == emails[2] else None
    for slug, days in (("old", 200), ("new", 10)):
        write_issue(workspace, slug)
        run.json("send", slug, "--yes")
        _sent_days_ago(workspace, slug, days)
    return emails


def test_roll_up_keeps_the_numbers_shown_and_drops_the_rows(run, workspace, db_url, smtp_server):
    _two_issues(run, workspace, db_url, smtp_server)
    before = run.json("issue", "status", "old")
    listed_before = {r["slug"]: r for r in run.json("issue", "list")}
    assert before["counts"]["sent"] == 4 and before["counts"]["failed"] == 1

    out = run("maintenance", "--roll-up-after", "180d").output
    assert "old (sent " in out and "5 delivery rows were deleted" in out
    assert "1 issues were rolled up" in out and "new (sent" not in out

    after = run.json("issue", "status", "old")
    assert after["counts"] == before["counts"] and after["by_language"] == before["by_language"]
    assert after["status"] == "sent" and after["rolled_up"][:10] == utcnow().date().isoformat()
    assert before["rolled_up"] is None and after["last_errors"] == []
    listed = {r["slug"]: r for r in run.json("issue", "list")}
    assert listed["old"]["counts"] == listed_before["old"]["counts"]
    assert listed["old"]["deliveries"] == 5 and listed["new"]["rolled_up"] is None
    assert listed["new"] == listed_before["new"]
    text = run("issue", "status", "old").output
    assert f"rolled up on {utcnow().date().isoformat()}" in text
    assert "rolled up on" in run("issue", "list").output
    assert _rows(workspace) == 5  # only the new issue's rows are left

    again = run.json("maintenance", "--roll-up-after", "180d")
    assert again["rolled_up"]["issues"] == [] and run.json("issue", "status", "old") == after


def test_dry_run_says_what_would_go_and_deletes_nothing(run, workspace, db_url, smtp_server):
    _two_issues(run, workspace, db_url, smtp_server)
    out = run("maintenance", "--roll-up-after", "26w", "--dry-run").output
    assert "old (sent " in out and "5 delivery rows would be deleted" in out
    assert "dry run: nothing was written" in out
    data = run.json("maintenance", "--roll-up-after", "26w", "--dry-run")
    [issue] = data["rolled_up"]["issues"]
    assert issue["slug"] == "old" and issue["deliveries"] == 5
    assert issue["by_language"]["fr"] == {"sent": 1, "failed": 1}
    assert _rows(workspace) == 10
    assert run.json("issue", "status", "old")["rolled_up"] is None


def test_a_rolled_up_issue_cannot_be_sent_again(run, workspace, db_url, smtp_server):
    _two_issues(run, workspace, db_url, smtp_server)
    run("maintenance", "--roll-up-after", "180d")
    mailed = len(smtp_server.messages)
    for extra in ((), ("--force",), ("--resend-unknown",)):
        result = run("send", "old", "--yes", *extra, ok=False)
        assert result.exit_code == 1, result.output
        assert "rolled up on" in result.output and "cannot be sent again" in result.output
        assert "Traceback" not in result.output
    assert len(smtp_server.messages) == mailed and _rows(workspace) == 5


def test_archive_and_data_export_keep_working(run, workspace, db_url, smtp_server, tmp_path):
    emails = _two_issues(run, workspace, db_url, smtp_server)
    run("maintenance", "--roll-up-after", "180d")
    run("archive", "build")
    site = workspace / "site"
    pages = [p for p in site.rglob("index.html") if "/old/" in p.as_posix()]
    assert pages, "the rolled-up issue's archive page is still built"
    data = json.loads(run("subscribers", "export-data", emails[0]).output)
    assert [d["issue"] for d in data["deliveries"]] == ["new"]


def test_a_bad_age_is_one_clear_line(run) -> None:
    for bad in ("180", "6 months", "0d", "-3d", "1y"):
        result = run("maintenance", "--roll-up-after", bad, ok=False)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.output.strip().splitlines() == [
            f"Error: --roll-up-after: {bad!r} is not a duration; write a whole number and a "
            f"unit h, d or w, e.g. 180d, 26w or 12h"]


def test_a_roll_up_stopped_half_way_shows_the_same_counts_and_is_finished_next_time(
        run, workspace, db_url, smtp_server, monkeypatch) -> None:
    import pytest

    from newsletter.delivery import retention

    _two_issues(run, workspace, db_url, smtp_server)
    before = run.json("issue", "status", "old")
    listed_before = {r["slug"]: r["counts"] for r in run.json("issue", "list")}
    real_delete = retention._delete_rows

    def stopped(engine, issue_id, chunk):
        with engine.begin() as conn:  # one chunk of 2 goes, then the process "dies"
            ids = select(Delivery.id).where(Delivery.issue_id == issue_id).limit(2)
            conn.execute(Delivery.__table__.delete().where(Delivery.id.in_(ids.scalar_subquery())))
        raise RuntimeError("stopped")

    monkeypatch.setattr(retention, "_delete_rows", stopped)
    engine = make_engine(load_settings(workspace).database_url)
    with pytest.raises(RuntimeError):
        retention.roll_up(engine, timedelta(days=180))
    engine.dispose()
    assert _rows(workspace) == 8  # 3 of the old issue's rows are left, 5 of the new
    half = run.json("issue", "status", "old")
    assert half["counts"] == before["counts"] and half["rolled_up"]
    assert {r["slug"]: r["counts"] for r in run.json("issue", "list")} == listed_before

    monkeypatch.setattr(retention, "_delete_rows", real_delete)
    out = run("maintenance", "--roll-up-after", "180d").output
    assert "3 delivery rows were deleted" in out and _rows(workspace) == 5
    assert run.json("issue", "status", "old")["counts"] == before["counts"]


def test_rows_go_a_chunk_at_a_time(run, workspace, db_url, smtp_server) -> None:
    from newsletter.delivery.retention import roll_up

    _two_issues(run, workspace, db_url, smtp_server)
    statements: list[str] = []
    engine = make_engine(load_settings(workspace).database_url)

    from sqlalchemy import event

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("DELETE FROM DELIVERIES"):
            statements.append(statement)

    report = roll_up(engine, timedelta(days=180), chunk=2)
    engine.dispose()
    assert [i.deliveries for i in report.issues] == [5]
    assert len(statements) == 3 and _rows(workspace) == 5  # 2 + 2 + 1
