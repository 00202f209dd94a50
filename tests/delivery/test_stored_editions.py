"""A send mails the issue as it was when enqueued: the compiled editions are stored then, and
the workers (and a resumed send) build every message from the database, not the workspace."""

from __future__ import annotations

import shutil
from email import message_from_bytes, policy

import pytest
from sqlalchemy import delete, select, update

from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.models import Delivery
from newsletter.db.tables import EDITIONS
from tests.delivery.sender_fixtures import configure, seed, write_issue

FIRST = "\nThe meeting is on Tuesday.\n"
EDITED = "\nThe meeting moved to Thursday.\n"


def _first_send_with_one_deferred(run, workspace, db_url, smtp_server) -> str:
    """Send to four readers; one is deferred for an hour, so the issue stays `sending`."""
    configure(workspace, db_url, smtp_server.port, retry_delay=3600.0, retry_window=1.0)
    write_issue(workspace, body_extra=FIRST)
    emails = seed(workspace, ["en", "fr", "en", "fr"])
    late = emails[2]
    smtp_server.reply_for = lambda rcpt, n: "451 4.3.0 try later" if (
        rcpt == late and n == 1) else None
    first = run.json("send", "nov", "--yes")
    assert (first["sent"], first["deferred"], first["status"]) == (3, 1, "sending")
    return late


def _due_now(workspace, *statements) -> None:
    engine = make_engine(load_settings(workspace).database_url)
    with engine.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.status == "deferred")
                     .values(next_attempt_at=None))
        for statement in statements:
            conn.execute(statement)
    engine.dispose()


def _text_to(smtp_server, email: str) -> str:
    [data] = [d for _s, rcpts, d in smtp_server.messages if rcpts == [email]]
    message = message_from_bytes(data, policy=policy.default)
    return message.get_body(("plain",)).get_content()


def test_a_resumed_send_mails_the_text_as_enqueued_after_the_markdown_changed(
        run, workspace, db_url, smtp_server):
    late = _first_send_with_one_deferred(run, workspace, db_url, smtp_server)
    write_issue(workspace, body_extra=EDITED)
    _due_now(workspace)
    resumed = run("send", "nov", "--yes")
    assert "changed since its send started (en, es, fr): the rest get the text as it was " \
        "enqueued" in " ".join(resumed.output.split())
    assert "issue is sent" in resumed.output
    text = _text_to(smtp_server, late)
    assert "The meeting is on Tuesday." in text and "Thursday" not in text


def test_a_resumed_send_needs_no_workspace_issue_folder(run, workspace, db_url, smtp_server):
    late = _first_send_with_one_deferred(run, workspace, db_url, smtp_server)
    shutil.rmtree(workspace / "issues" / "nov")
    _due_now(workspace)
    resumed = run.json("send", "nov", "--yes")
    assert (resumed["sent"], resumed["status"]) == (1, "sent")
    assert "The meeting is on Tuesday." in _text_to(smtp_server, late)


def test_an_issue_enqueued_before_the_editions_were_stored_compiles_from_the_workspace(
        run, workspace, db_url, smtp_server):
    late = _first_send_with_one_deferred(run, workspace, db_url, smtp_server)
    _due_now(workspace, update(EDITIONS).values(compiled=None))  # as the previous release left it
    resumed = run.json("send", "nov", "--yes")
    assert (resumed["sent"], resumed["status"]) == (1, "sent")
    assert "The meeting is on Tuesday." in _text_to(smtp_server, late)
    engine = make_engine(load_settings(workspace).database_url)
    with engine.connect() as conn:  # stored now: the workers did not need the workspace
        assert None not in conn.execute(select(EDITIONS.c.compiled)).scalars().all()
    engine.dispose()


def test_an_old_issue_without_its_source_or_stored_editions_is_refused_in_one_line(
        run, workspace, db_url, smtp_server):
    _first_send_with_one_deferred(run, workspace, db_url, smtp_server)
    _due_now(workspace, update(EDITIONS).values(compiled=None))
    shutil.rmtree(workspace / "issues" / "nov")
    result = run("send", "nov", "--yes", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = " ".join(result.output.split())
    assert "was queued by an older version, which kept no compiled en, es, fr edition" in line


def test_a_queued_language_without_a_compiled_edition_is_refused_in_one_line(
        run, workspace, db_url, smtp_server):
    _first_send_with_one_deferred(run, workspace, db_url, smtp_server)
    _due_now(workspace, delete(EDITIONS).where(EDITIONS.c.language == "en"))
    before = len(smtp_server.messages)
    result = run("send", "nov", "--yes", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0
    assert "has deliveries queued in en but no compiled edition" in result.output
    assert len(smtp_server.messages) == before


@pytest.mark.slow
def test_workers_build_from_the_stored_editions_when_the_markdown_changes_after_enqueue(
        workspace, db_url, services, smtp_server):
    """Two spawned worker processes, started after the edit: each reads the database."""
    from newsletter.db.sender import sender_engine
    from newsletter.delivery import dispatch

    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace, body_extra=FIRST)
    emails = seed(workspace, ["en", "fr"] * 2)
    settings = load_settings(workspace)
    engine = sender_engine(settings.database_url, services.keyring.address_key)
    plan = dispatch.prepare_send(settings, engine, "nov")
    issue_id, _added = dispatch.begin_send(settings, engine, plan)
    write_issue(workspace, body_extra=EDITED)
    result, status = dispatch.deliver(settings, engine, "nov", issue_id, plan, lambda _d: None,
                                      workers=2)
    engine.dispose()
    assert (result.counts["sent"], status) == (4, "sent")
    for email in emails:
        assert "Tuesday" in _text_to(smtp_server, email)
        assert "Thursday" not in _text_to(smtp_server, email)
