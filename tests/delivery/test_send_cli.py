"""`newsletter send` and `newsletter issue status` end to end: real SMTP server, both databases."""

from __future__ import annotations

from collections import Counter
from email import message_from_bytes, policy

from sqlalchemy import select

from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.models import Edition, Issue
from tests.conftest import address_key, require_module
from tests.delivery.sender_fixtures import (
    configure,
    deliveries,
    seed,
    suppress,
    write_config,
    write_issue,
)


def _setup(workspace, db_url, smtp_server, languages=("en", "fr", "es", None) * 5, **smtp):
    configure(workspace, db_url, smtp_server.port, **smtp)
    write_issue(workspace)
    return seed(workspace, list(languages))


def _languages_received(smtp_server) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for _sender, rcpts, data in smtp_server.messages:
        msg = message_from_bytes(data, policy=policy.default)
        out.setdefault(rcpts[0], []).append(msg["Content-Language"])
    return out


def test_every_confirmed_subscriber_gets_exactly_one_message_in_their_language(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server)
    result = run.json("send", "nov", "--yes")
    assert result["sent"] == 20 and result["status"] == "sent"
    got = _languages_received(smtp_server)
    expected = dict(zip(emails, [lang or "en" for lang in ("en", "fr", "es", None) * 5],
                        strict=True))
    assert {e: langs for e, langs in got.items()} == {e: [lang] for e, lang in expected.items()}
    assert all(status == "sent" for status, _l, _r in deliveries(workspace).values())


def test_suppressed_and_unconfirmed_addresses_never_enter_the_queue(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server, languages=["en"] * 4)
    seed(workspace, ["en"], status="pending", start=100)
    suppress(workspace, emails[1].upper())  # the hash is of the normalized address
    run.json("send", "nov", "--yes")
    rows = deliveries(workspace)
    assert set(rows) == {emails[0], emails[2], emails[3]}
    assert {r[0] for _s, r, _d in smtp_server.messages} == {emails[0], emails[2], emails[3]}


def test_subscriber_suppressed_after_enqueue_is_skipped_not_mailed(
        run, workspace, db_url, smtp_server):
    from newsletter.db import sender
    from newsletter.delivery import dispatch

    emails = _setup(workspace, db_url, smtp_server, languages=["en"] * 3)
    settings = load_settings(workspace)
    engine = sender.sender_engine(settings.database_url, address_key(settings.database_url))
    plan = dispatch.prepare_send(settings, engine, "nov")
    dispatch.begin_send(settings, engine, plan)
    engine.dispose()
    suppress(workspace, emails[0])
    run.json("send", "nov", "--yes")
    assert deliveries(workspace)[emails[0]][0] == "skipped"
    assert len(smtp_server.messages) == 2


def test_missing_language_blocks_the_send_with_counts_until_a_fallback_is_named(
        run, workspace, db_url, smtp_server):
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace, languages=("en", "fr"))
    seed(workspace, ["en", "es", "es", "de"], list_languages=("en", "fr", "es", "de"))
    blocked = run("send", "nov", "--yes", ok=False)
    assert blocked.exit_code == 1
    assert "1 in de, 2 in es" in blocked.output and "--fallback-language" in blocked.output
    assert deliveries(workspace) == {} and smtp_server.messages == []
    result = run.json("send", "nov", "--yes", "--fallback-language", "en")
    assert result["sent"] == 4
    assert Counter(lang for _s, lang, _r in deliveries(workspace).values()) == {"en": 4}


def test_resending_a_sent_issue_is_refused_and_force_mails_only_new_subscribers(
        run, workspace, db_url, smtp_server):
    _setup(workspace, db_url, smtp_server, languages=["en", "fr"])
    run.json("send", "nov", "--yes")
    again = run("send", "nov", "--yes", ok=False)
    assert again.exit_code == 1 and "--force" in again.output
    newcomer = seed(workspace, ["es"], start=50)
    forced = run.json("send", "nov", "--yes", "--force")
    assert forced["sent"] == 1
    assert Counter(r[0] for _s, r, _d in smtp_server.messages) == Counter(
        {"reader0@example.org": 1, "reader1@example.org": 1, newcomer[0]: 1})


def test_test_copies_go_out_in_every_language_without_touching_deliveries(
        run, workspace, db_url, smtp_server):
    _setup(workspace, db_url, smtp_server)
    copies = run.json("send", "nov", "--test-to", "editor@example.org,second@example.org")
    assert len(copies) == 6
    assert sorted(_languages_received(smtp_server)["editor@example.org"]) == ["en", "es", "fr"]
    assert deliveries(workspace) == {}


def test_dry_run_builds_every_message_and_sends_none(run, workspace, db_url, smtp_server):
    _setup(workspace, db_url, smtp_server)
    report = run.json("send", "nov", "--dry-run")
    assert report["messages"] == {"en": 10, "fr": 5, "es": 5}
    assert 0 < report["smallest"] <= report["largest"]
    assert report["total_bytes"] >= 20 * report["smallest"]
    assert smtp_server.messages == [] and deliveries(workspace) == {}


def test_issue_with_check_errors_is_refused(run, workspace, db_url, smtp_server):
    _setup(workspace, db_url, smtp_server)
    fr = workspace / "issues" / "nov" / "fr.md"
    fr.write_text(fr.read_text("utf-8") + "\n![](https://example.org/x.png)\n", "utf-8")
    refused = run("send", "nov", "--yes", ok=False)
    assert refused.exit_code == 1 and "has errors" in refused.output
    assert smtp_server.messages == [] and deliveries(workspace) == {}


def test_editions_and_issue_rows_record_what_was_sent(run, workspace, db_url, smtp_server):
    _setup(workspace, db_url, smtp_server, languages=["en", "fr"])
    run.json("send", "nov", "--yes")
    engine = make_engine(load_settings(workspace).database_url)
    with engine.connect() as conn:
        issue = conn.execute(select(Issue.status, Issue.sent_at)).one()
        editions = {r.language: r for r in conn.execute(select(Edition.__table__))}
    engine.dispose()
    assert issue.status == "sent" and issue.sent_at is not None
    assert editions["en"].sent_at and editions["fr"].sent_at
    assert editions["es"].sent_at is None  # nobody reads Spanish on this list
    assert editions["fr"].subject == "Nouvelles de la coalition" and editions["fr"].web_html


def test_issue_status_reports_counts_by_status_and_language_and_last_errors(
        run, workspace, db_url, smtp_server):
    emails = _setup(workspace, db_url, smtp_server, languages=["en", "fr", "fr"])
    smtp_server.reply_for = lambda rcpt, n: "550 5.1.1 no such user" if rcpt == emails[2] else None
    run.json("send", "nov", "--yes")
    status = run.json("issue", "status", "nov")
    assert status["status"] == "sent"
    assert status["counts"]["sent"] == 2 and status["counts"]["failed"] == 1
    assert status["by_language"]["fr"]["failed"] == 1 and status["by_language"]["en"]["sent"] == 1
    assert status["last_errors"][0]["email"] == emails[2]
    assert "550 5.1.1 no such user" in status["last_errors"][0]["reply"]
    text = run("issue", "status", "nov").output
    assert "550 5.1.1 no such user" in text and "failed" in text


def test_status_of_an_unknown_issue_is_one_clear_line(run):
    result = run("issue", "status", "nope", ok=False)
    assert result.exit_code == 1 and "nope" in result.output and "Traceback" not in result.output


def test_send_picks_its_workers_for_the_machine_and_says_so(run, workspace, db_url, smtp_server):
    import os

    from newsletter.delivery.concurrency import default_workers

    _setup(workspace, db_url, smtp_server, workers=0)  # [smtp] workers 0: pick
    cores = os.cpu_count() or 1
    picked = max(1, cores // 2)
    out = run("send", "nov", "--yes").output
    noun = "worker" if picked == 1 else "workers"
    assert f"Sending with {picked} {noun} x 2 SMTP connections (picked for {cores} CPU cores)." \
        in out
    assert [default_workers(n) for n in (None, 1, 2, 3, 4, 8)] == [1, 1, 1, 1, 2, 4]


def test_a_signed_send_picks_one_worker_and_signer_processes_and_says_so(workspace, db_url):
    import os

    from newsletter.config import load_settings
    from newsletter.delivery.concurrency import concurrency, default_signers

    require_module("cryptography")
    write_config(workspace, db_url, '\n[smtp]\nworkers = 0\n\n[dkim]\nkey_path = "dkim.pem"\n'
                 'selector = "s1"\n')
    chosen = concurrency(load_settings(workspace), None, None)
    cores = os.cpu_count() or 1
    signers = max(1, cores - 1)
    assert (chosen.workers, chosen.signers) == (1, signers)
    noun = "process" if signers == 1 else "processes"
    assert chosen.describe().endswith(
        f", {signers} DKIM signer {noun} (picked for {cores} CPU cores, DKIM signing)")
    # --workers 2: two sender processes, each with the signers the cores leave (at least one)
    two = concurrency(load_settings(workspace), 2, 3)
    assert (two.workers, two.signers) == (2, default_signers(cores, 2))
    assert two.describe().startswith("2 workers x 3 SMTP connections, ")
    assert two.describe().endswith(" each")
    assert [default_signers(n, w) for n, w in ((None, 1), (1, 1), (2, 1), (2, 2), (8, 1), (8, 2))
            ] == [1, 1, 1, 1, 7, 3]


def test_workers_and_connections_flags_override_the_choice(run, workspace, db_url, smtp_server):
    _setup(workspace, db_url, smtp_server, workers=0)
    result = run("send", "nov", "--yes", "--workers", "1", "--connections", "3")
    assert "Sending with 1 worker x 3 SMTP connections." in result.output
    assert len(smtp_server.messages) == 20
    write_issue(workspace, slug="dec")
    report = run.json("send", "dec", "--yes", "--workers", "2", "--connections", "1")
    assert (report["workers"], report["connections"], report["sent"]) == (2, 1, 20)
