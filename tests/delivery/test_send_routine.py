"""The month's routine at send time: dry runs count what the real run sends, test copies say so."""

from __future__ import annotations

from email import message_from_bytes, policy

from tests.delivery.sender_fixtures import configure, seed, write_issue


def _subjects(smtp_server) -> list[str]:
    return sorted(str(message_from_bytes(data, policy=policy.default)["Subject"])
                  for _s, _r, data in smtp_server.messages)


def test_force_dry_run_counts_exactly_the_messages_the_real_force_send_sends(
        run, workspace, db_url, smtp_server):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en", "fr"] * 5)
    assert run.json("send", "nov", "--yes")["sent"] == 10
    seed(workspace, ["en", "fr", "es"], start=50)
    dry = run.json("send", "nov", "--force", "--dry-run")
    before = len(smtp_server.messages)
    forced = run.json("send", "nov", "--yes", "--force")
    assert forced["sent"] == len(smtp_server.messages) - before == 3
    assert dry["messages"] == {"en": 1, "fr": 1, "es": 1}


def test_dry_run_of_a_fully_sent_issue_under_force_builds_nothing(
        run, workspace, db_url, smtp_server):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace)
    seed(workspace, ["en", "fr"])
    run.json("send", "nov", "--yes")
    assert run.json("send", "nov", "--force", "--dry-run")["messages"] == {}


def test_test_copies_carry_a_test_prefix_and_the_real_send_does_not(
        run, workspace, db_url, smtp_server):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace, languages=("en", "fr"))
    seed(workspace, ["en"], list_languages=("en", "fr"))
    run.json("send", "nov", "--test-to", "editor@example.org")
    assert _subjects(smtp_server) == ["[TEST] Coalition news", "[TEST] Nouvelles de la coalition"]
    smtp_server.messages.clear()
    run.json("send", "nov", "--yes")
    assert _subjects(smtp_server) == ["Coalition news"]


def test_test_prefix_is_configurable_and_an_empty_one_turns_it_off(
        run, workspace, db_url, smtp_server):
    configure(workspace, db_url, smtp_server.port)
    config = workspace / "newsletter.toml"  # the shared test config has a [send] table
    config.write_text(config.read_text("utf-8").replace(
        "publish_check = false", 'publish_check = false, test_subject_prefix = "[PROOF] "'),
        "utf-8")
    write_issue(workspace, languages=("en",))
    seed(workspace, ["en"], list_languages=("en",))
    run.json("send", "nov", "--test-to", "editor@example.org")
    assert _subjects(smtp_server) == ["[PROOF] Coalition news"]
    text = (workspace / "newsletter.toml").read_text("utf-8").replace('"[PROOF] "', '""')
    (workspace / "newsletter.toml").write_text(text, "utf-8")
    smtp_server.messages.clear()
    run.json("send", "nov", "--test-to", "editor@example.org")
    assert _subjects(smtp_server) == ["Coalition news"]


def test_resume_dry_run_counts_only_the_deliveries_the_run_would_retry(
        run, workspace, db_url, smtp_server):
    from sqlalchemy import update

    from newsletter.config import load_settings
    from newsletter.db.engine import make_engine
    from newsletter.db.models import Delivery, utcnow

    configure(workspace, db_url, smtp_server.port, retry_delay=3600.0, retry_window=1.0)
    write_issue(workspace)
    emails = seed(workspace, ["en", "fr", "en", "fr"])
    smtp_server.reply_for = lambda rcpt, n: "451 4.3.0 try later" if (
        rcpt == emails[1] and n == 1) else None
    first = run.json("send", "nov", "--yes")
    assert (first["sent"], first["deferred"], first["status"]) == (3, 1, "sending")
    assert run.json("send", "nov", "--dry-run")["messages"] == {}  # its retry is an hour away
    assert run.json("send", "nov", "--yes")["sent"] == 0
    engine = make_engine(load_settings(workspace).database_url)
    with engine.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.status == "deferred")
                     .values(next_attempt_at=utcnow()))
    engine.dispose()
    dry = run.json("send", "nov", "--dry-run")
    before = len(smtp_server.messages)
    resumed = run.json("send", "nov", "--yes")
    assert dry["messages"] == {"fr": 1}
    assert resumed["sent"] == len(smtp_server.messages) - before == 1
