"""`subscribers export-data` (access, portability) and `maintenance` (purge of stale pending
subscriptions), driven as an operator would."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select, update

from newsletter.audience.optin import OptIn, RequestMeta, subscribe
from newsletter.db.models import (
    Delivery,
    Edition,
    Event,
    Issue,
    MailingList,
    OutboxMessage,
    Signature,
    Statement,
    Subscriber,
    Subscription,
    utcnow,
)
from newsletter.web.mails import SystemMails
from tests.cli.test_audience_cli import make_list


def _sent_issue(services, emails: list[str]) -> None:
    now = utcnow()
    with services.engine.begin() as conn:
        news = conn.scalar(select(MailingList.id).where(MailingList.slug == "news"))
        issue = conn.execute(insert(Issue).values(slug="2026-11-update", list_id=news,
                                                  status="sent", created_at=now, data={})
                             .returning(Issue.id)).scalar_one()
        conn.execute(insert(Edition).values(issue_id=issue, language="fr",
                                            subject="Lettre de novembre"))
        for address in emails:
            sid = conn.scalar(select(Subscriber.id).where(Subscriber.email == address))
            conn.execute(insert(Delivery).values(issue_id=issue, subscriber_id=sid,
                                                 list_id=news, language="fr", status="sent",
                                                 attempts=1, created_at=now, sent_at=now))


def test_export_data_holds_the_subscribers_data_and_nobody_elses(run, services, tmp_path):
    make_list(run)
    run("subscribers", "add", "amina@example.org", "--list", "news", "--name", "Amina Diallo",
        "--language", "fr", "--confirmed", "--consent-source", "sign-up sheet, Dakar 2026")
    run("subscribers", "add", "bruno@example.org", "--list", "news", "--name", "Bruno Other",
        "--language", "fr", "--confirmed", "--consent-source", "Bruno's own form")
    _sent_issue(services, ["amina@example.org", "bruno@example.org"])
    out = tmp_path / "amina.json"
    result = run("subscribers", "export-data", "AMINA@example.org", "--output", str(out))
    assert "written to" in result.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["subscriber"]["email"] == "amina@example.org"
    assert data["subscriber"]["name"] == "Amina Diallo"
    assert [(s["list"], s["status"]) for s in data["subscriptions"]] == [("news", "confirmed")]
    [event] = data["consent_events"]
    assert event["kind"] == "import-confirmed" and event["source"] == "sign-up sheet, Dakar 2026"
    assert event["at"].startswith(str(utcnow().year))
    [delivery] = data["deliveries"]
    assert delivery["issue"] == "2026-11-update" and delivery["subject"] == "Lettre de novembre"
    assert delivery["sent_at"] is not None
    text = out.read_text(encoding="utf-8").lower()
    assert "bruno" not in text
    # Without --output it goes to standard output, the same document.
    assert json.loads(run("subscribers", "export-data", "amina@example.org").output)[
        "subscriber"] == data["subscriber"]


def _signed(services, email: str, organisation: str, status: str) -> None:
    with services.engine.begin() as conn:
        sid = conn.execute(insert(Statement).values(slug=f"s-{organisation.split()[0].lower()}")
                           .returning(Statement.id)).scalar_one()
        conn.execute(insert(Signature).values(
            statement_id=sid, organisation=organisation, organisation_key=organisation.lower(),
            country="SN", organisation_type="ngo", contact_name="Someone", contact_email=email,
            language="fr", listed=False, status=status, verified_at=utcnow()))


def test_export_data_lists_the_statements_the_subscriber_signed(run, services, tmp_path):
    make_list(run)
    run("subscribers", "add", "amina@example.org", "--list", "news", "--confirmed",
        "--consent-source", "sign-up sheet")
    _signed(services, "amina@example.org", "Dakar Solidarité", "approved")
    _signed(services, "bruno@example.org", "Bruno Aid", "verified")
    data = json.loads(run("subscribers", "export-data", "amina@example.org").output)
    [signature] = data["signatures"]
    assert {key: signature[key] for key in ("statement", "organisation", "country",
                                            "organisation_type", "language", "listed",
                                            "status")} == {
        "statement": "s-dakar", "organisation": "Dakar Solidarité", "country": "SN",
        "organisation_type": "ngo", "language": "fr", "listed": False, "status": "approved"}
    assert signature["signed_at"] and signature["verified_at"]
    assert "bruno" not in json.dumps(data).lower()


def test_export_data_of_an_unknown_address_is_one_clear_line(run):
    result = run("subscribers", "export-data", "nobody@example.org", ok=False)
    assert result.exit_code == 1
    assert result.output.strip() == "Error: no subscriber or signatory nobody@example.org"


def _age(services, address: str, days: int) -> None:
    with services.engine.begin() as conn:
        sid = conn.scalar(select(Subscriber.id).where(Subscriber.email == address))
        conn.execute(update(Subscription).where(Subscription.subscriber_id == sid,
                                                Subscription.status == "pending")
                     .values(created_at=utcnow() - timedelta(days=days)))


def test_maintenance_purges_stale_pending_subscriptions_and_is_idempotent(run, services):
    make_list(run)
    run("lists", "add", "events", "--name", "Events", "--languages", "en")
    ctx = OptIn.from_settings(services.settings, services.engine,
                              SystemMails(services.settings))
    subscribe(ctx, list_slug="news", email="never@example.org", name="Never Confirmed",
              meta=RequestMeta(ip="192.0.2.1", source="https://x.example/?e=never@example.org"))
    run("subscribers", "add", "both@example.org", "--list", "news", "--confirmed",
        "--consent-source", "form")
    run("subscribers", "add", "both@example.org", "--list", "events", "--no-invite")
    run("subscribers", "add", "fresh@example.org", "--list", "news", "--no-invite")
    _age(services, "never@example.org", 31)
    _age(services, "both@example.org", 40)

    dry = run.json("maintenance", "--dry-run")
    assert (dry["subscriptions"], dry["subscribers"], dry["dry_run"]) == (2, 1, True)
    assert len(run.json("subscribers", "list")) == 4

    result = run("maintenance")
    assert "2 subscriptions were purged, 1 subscribers were deleted entirely" in result.output
    left = {(r["email"], r["list"], r["status"]) for r in run.json("subscribers", "list")}
    assert left == {("both@example.org", "news", "confirmed"),
                    ("fresh@example.org", "news", "pending")}
    with services.engine.connect() as conn:
        recipients = conn.scalars(select(OutboxMessage.recipient)).all()
        sources = conn.scalars(select(Event.source)).all()
        purge = conn.execute(select(Event.data).where(Event.kind == "purge")).scalar_one()
    assert recipients == []  # the confirmation mail to never@ went with them
    assert not any("never@" in (s or "") for s in sources)
    assert purge == {"pending_days": 30, "subscriptions": 2, "subscribers": 1}
    # Not suppressed: they never consented, and may still sign up.
    again = subscribe(ctx, list_slug="news", email="never@example.org", meta=RequestMeta())
    assert again.outcome == "pending"
    assert run.json("maintenance")["subscriptions"] == 0


def test_maintenance_follows_audience_pending_days(run, services, workspace):
    make_list(run)
    run("subscribers", "add", "week@example.org", "--list", "news")
    _age(services, "week@example.org", 8)
    assert run.json("maintenance")["subscriptions"] == 0
    config = workspace / "newsletter.toml"
    config.write_text(config.read_text() + "\n[audience]\npending_days = 7\n")
    assert run.json("maintenance")["subscriptions"] == 1


def test_maintenance_vacuum_leaves_no_old_deleted_row_in_the_sqlite_file(run, services):
    if services.engine.dialect.name != "sqlite":
        result = run("maintenance", "--vacuum", ok=False)
        assert result.exit_code == 1 and "VACUUM FULL" in result.output
        assert len(result.output.strip().splitlines()) == 1
        return
    import sqlite3

    path = services.engine.url.database
    # A row deleted the way versions before secure_delete did: its bytes stay in free space.
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA secure_delete=OFF")
    db.execute("INSERT INTO events (kind, created_at, source, data) VALUES "
               "('manage', '2026-01-01', 'https://x/?e=old.remnant@example.org', '{}')")
    db.execute("DELETE FROM events WHERE kind = 'manage'")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    assert b"old.remnant@example.org" in Path(path).read_bytes()
    assert run.json("maintenance", "--vacuum")["vacuumed"] is True
    assert b"old.remnant@example.org" not in Path(path).read_bytes()
    assert "database file rewritten" in run("maintenance", "--vacuum").output
