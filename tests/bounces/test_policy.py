"""The bounce policy's counting and records, pinned where mutation testing found them loose."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from newsletter.bounces.policy import Outcome, mask_address
from newsletter.bounces.receiver import Processor
from newsletter.db.models import Delivery, Suppression, utcnow
from newsletter.delivery.verp import encode_verp
from newsletter.services import Services
from newsletter.tokens import Signer
from tests.bounces.messages import arf, dsn
from tests.bounces.test_receiver import deliveries, events, suppression, verp
from tests.bounces.test_records import without_message_id
from tests.delivery.sender_fixtures import seed


def _sent_at(services: Services, times: dict[int, datetime], reply: str | None = None) -> None:
    """Set when deliveries went out (and the last reply they kept from the relay)."""
    with services.engine.begin() as conn:
        for did, at in times.items():
            values: dict[str, object] = {"sent_at": at}
            if reply is not None:
                values["last_reply"] = reply
            conn.execute(update(Delivery).where(Delivery.id == did).values(**values))


def _suppressions(services: Services) -> list[tuple[str, str]]:
    with services.engine.connect() as conn:
        return [(r, d) for r, d in conn.execute(select(Suppression.reason, Suppression.detail))]


def test_a_second_report_about_a_suppressed_address_keeps_one_suppression_and_says_so(
        services: Services) -> None:
    processor = Processor.from_settings(services.settings, services.engine)
    emails = seed(services.settings.workspace, ["en"])
    first, second = (deliveries(services, emails, slug)[emails[0]] for slug in ("nov", "dec"))
    long_reason = "smtp; 550 5.1.1 " + "no such user here " * 40
    hard = processor.process(dsn(verp(services, first), emails[0], diagnostic=long_reason))
    again = processor.process(dsn(verp(services, second), emails[0]))
    assert (hard.action, hard.note) == ("suppressed", "")
    assert (again.action, again.note) == ("suppressed", "already suppressed")
    assert not (hard.unsubscribed or again.unsubscribed)  # a bounce never unsubscribes
    [(reason, detail)] = _suppressions(services)
    # The detail is the first report's status and the server's words, cut to 500 characters.
    assert reason == "bounce" and len(detail) == 500
    assert detail.startswith("5.1.1 smtp; 550 5.1.1 no such user here no such")
    with services.engine.connect() as conn:
        marked = conn.scalar(select(Delivery.last_reply).where(Delivery.id == first))
    assert len(marked) == 500 and marked.startswith("bounced: hard 5.1.1 smtp; 550 5.1.1 no")


@pytest.mark.parametrize(("address", "shown"), [
    ("amelie@example.net", "a***@example.net"),
    ('"a@b"@example.net', '"***@example.net'),  # a quoted local part may hold an @
    ("not-an-address", "***"),
    ("", ""),
])
def test_addresses_are_masked_to_their_first_letter_and_domain(address: str, shown: str) -> None:
    assert mask_address(address) == shown


def test_a_complaint_about_a_suppressed_or_departed_subscriber_says_so(
        services: Services) -> None:
    processor = Processor.from_settings(services.settings, services.engine)
    emails = seed(services.settings.workspace, ["en"])
    first, second, third = (deliveries(services, emails, slug)[emails[0]]
                            for slug in ("oct", "nov", "dec"))
    processor.process(dsn(verp(services, first), emails[0]))
    complaint = processor.process(arf(verp(services, second), emails[0]))
    again = processor.process(arf(verp(services, third), emails[0]))
    assert (complaint.action, complaint.note, complaint.unsubscribed) == (
        "suppressed", "unsubscribed from news; already suppressed", True)
    assert (again.action, again.note, again.unsubscribed) == (
        "suppressed", "not subscribed; already suppressed", False)
    assert _suppressions(services)[0][0] == "bounce"


def test_a_policy_block_is_recorded_with_a_note_and_changes_nothing(services: Services) -> None:
    processor = Processor.from_settings(services.settings, services.engine)
    emails = seed(services.settings.workspace, ["en"])
    did = deliveries(services, emails, "nov")[emails[0]]
    block = processor.process(dsn(verp(services, did), emails[0], status="5.7.1",
                                  diagnostic="smtp; 550 5.7.1 blocked by policy"))
    assert (block.action, block.note, block.unsubscribed) == (
        "recorded", "policy block: address kept", False)
    assert suppression(services, emails[0]) is None


def test_only_the_subscribers_own_deliveries_count_and_reset_soft_bounces(
        services: Services) -> None:
    processor = Processor.from_settings(services.settings, services.engine)
    amelie, bruno = seed(services.settings.workspace, ["en", "en"])
    start = utcnow() - timedelta(days=3)
    issues = [deliveries(services, [amelie, bruno], f"issue-{n}") for n in range(6)]
    # Amélie's five deliveries went out an hour apart; Bruno's second one got through in between.
    _sent_at(services, {ids[amelie]: start + timedelta(hours=n) for n, ids in enumerate(issues)})
    _sent_at(services, {issues[0][bruno]: start, issues[1][bruno]: start + timedelta(hours=2.5)})

    def soft(address: str, did: int) -> Outcome:
        return processor.process(dsn(verp(services, did), address, status="4.2.2"))

    assert soft(bruno, issues[0][bruno]).note == "1 of 5 within 7 days"
    notes = [soft(amelie, ids[amelie]).note for ids in issues[:4]]
    assert notes == [f"{n} of 5 within 7 days" for n in (1, 2, 3, 4)]
    last = soft(amelie, issues[4][amelie])
    assert (last.action, last.note) == ("suppressed", "5 soft bounces within 7 days")
    after = soft(amelie, issues[5][amelie])
    assert (after.action, after.note) == ("suppressed",
                                          "6 soft bounces within 7 days; already suppressed")
    # A bounce never unsubscribes: only a complaint does.
    assert not (last.unsubscribed or after.unsubscribed)
    assert suppression(services, amelie) == "bounce" and suppression(services, bruno) is None


def test_a_delivery_that_got_through_after_a_retry_resets_the_soft_bounce_count(
        services: Services) -> None:
    processor = Processor.from_settings(services.settings, services.engine)
    emails = seed(services.settings.workspace, ["en"])
    ids = [deliveries(services, emails, f"issue-{n}")[emails[0]] for n in range(4)]
    start = utcnow() - timedelta(days=1)
    _sent_at(services, {did: start + timedelta(hours=n) for n, did in enumerate(ids)})
    # ids[2] was deferred once, then sent: its last reply is the relay's 4yz, not a bounce.
    _sent_at(services, {ids[2]: start + timedelta(hours=2)}, reply="451 4.3.0 try again later")

    outcomes = [processor.process(dsn(verp(services, did), emails[0], status="4.2.2"))
                for did in (ids[0], ids[1], ids[3])]
    assert [(o.note, o.unsubscribed) for o in outcomes] == [
        ("1 of 5 within 7 days", False), ("2 of 5 within 7 days", False),
        ("1 of 5 within 7 days", False)]


def test_a_soft_bounce_exactly_soft_days_old_still_counts(services: Services) -> None:
    processor = Processor.from_settings(services.settings, services.engine)
    emails = seed(services.settings.workspace, ["en"])
    old, new = (deliveries(services, emails, slug)[emails[0]] for slug in ("nov", "dec"))
    now = utcnow()

    def soft(did: int, at: datetime) -> str:
        return processor.process(dsn(verp(services, did), emails[0], status="4.2.2"),
                                 now=at).note

    assert soft(old, now - timedelta(days=7)) == "1 of 5 within 7 days"
    assert soft(new, now) == "2 of 5 within 7 days"


def test_a_soft_bounce_older_than_soft_days_no_longer_counts(services: Services) -> None:
    processor = Processor.from_settings(services.settings, services.engine)
    emails = seed(services.settings.workspace, ["en"])
    ids = [deliveries(services, emails, slug)[emails[0]] for slug in ("oct", "nov", "dec")]
    now = utcnow()

    def soft(did: int, at: datetime) -> str:
        return processor.process(dsn(verp(services, did), emails[0], status="4.2.2"),
                                 now=at).note

    assert soft(ids[0], now - timedelta(days=7, minutes=1)) == "1 of 5 within 7 days"
    assert soft(ids[1], now - timedelta(days=3)) == "2 of 5 within 7 days"
    assert soft(ids[2], now) == "2 of 5 within 7 days"  # the first fell out of the window


def test_two_soft_reports_about_one_delivery_count_once(services: Services) -> None:
    processor = Processor.from_settings(services.settings, services.engine)
    emails = seed(services.settings.workspace, ["en"])
    did = deliveries(services, emails, "nov")[emails[0]]
    notes = [processor.process(dsn(verp(services, did), emails[0], status="4.2.2",
                                   message_id=f"<dsn-{n}@mx.example.net>")).note
             for n in range(2)]
    assert notes == ["1 of 5 within 7 days", "1 of 5 within 7 days"]


def test_bounces_list_shows_each_report_newest_first_within_the_days_asked(
        run, services: Services) -> None:
    processor = Processor.from_settings(services.settings, services.engine)
    emails = seed(services.settings.workspace, ["en", "en", "en"])
    ids = deliveries(services, emails, "nov")
    now = utcnow()
    processor.process(dsn(verp(services, ids[emails[2]]), emails[2]), now=now - timedelta(days=40))
    processor.process(dsn(verp(services, ids[emails[0]]), emails[0]), now=now - timedelta(days=2))
    processor.process(dsn(verp(services, ids[emails[1]]), emails[1], status="4.2.2",
                          diagnostic="smtp; 452 4.2.2 mailbox full"), now=now - timedelta(days=1))
    forged = encode_verp(services.settings, Signer("attacker-key-0000000000"), ids[emails[0]])
    processor.process(dsn(forged, emails[0]), now=now - timedelta(hours=1))

    rows = json.loads(run("bounces", "list", "--since", "30", "--json").output)
    shown = [{k: v for k, v in row.items() if k != "at"} for row in rows]
    assert shown == [
        {"event": "bounce-unmatched", "kind": "hard", "status": "5.1.1", "issue": "",
         "address": mask_address(emails[0]), "outcome": "unmatched",
         "note": "no valid VERP token", "diagnostic": "smtp; 550 5.1.1 user unknown"},
        {"event": "bounce", "kind": "soft", "status": "4.2.2", "issue": "nov",
         "address": mask_address(emails[1]), "outcome": "counted",
         "note": "1 of 5 within 7 days", "diagnostic": "smtp; 452 4.2.2 mailbox full"},
        {"event": "bounce", "kind": "hard", "status": "5.1.1", "issue": "nov",
         "address": mask_address(emails[0]), "outcome": "suppressed", "note": "",
         "diagnostic": "smtp; 550 5.1.1 user unknown"},
    ]
    assert rows[0]["at"] > rows[1]["at"] > rows[2]["at"]
    newest = json.loads(run("bounces", "list", "--since", "30", "--limit", "1", "--json").output)
    assert [row["event"] for row in newest] == ["bounce-unmatched"]


def test_bounces_serve_prints_one_aligned_line_per_report() -> None:
    hard = Outcome(kind="hard", action="suppressed", delivery_id=7, status="5.1.1",
                   address="a***@example.net")
    unmatched = Outcome(kind="unknown", action="unmatched", note="no valid VERP token")
    assert hard.line() == ("hard      5.1.1   delivery 7       a***@example.net"
                           "             suppressed")
    assert unmatched.line() == ("unknown   -       -                -"
                                "                            unmatched (no valid VERP token)")


@pytest.mark.parametrize(("header", "values"), [
    ("Date", ("Mon, 23 Nov 2026 10:00:00 +0000", "Mon, 30 Nov 2026 10:00:00 +0000")),
    ("Subject", ("Delayed mail (4 hours)", "Delayed mail (24 hours)")),
    ("From", ("MAILER-DAEMON@mx1.example.net", "MAILER-DAEMON@mx2.example.net")),
])
def test_reports_without_message_id_that_differ_in_date_subject_or_from_are_two_reports(
        services: Services, header: str, values: tuple[str, str]) -> None:
    processor = Processor.from_settings(services.settings, services.engine)
    emails = seed(services.settings.workspace, ["en"])
    did = deliveries(services, emails, "nov")[emails[0]]
    report = without_message_id(dsn(verp(services, did), emails[0], status="4.4.7",
                                    action="delayed"))
    # The header added on top is the one read: two notices with the same body.
    actions = [processor.process(f"{header}: {value}\r\n".encode() + report).action
               for value in values]
    assert actions == ["counted", "counted"]
    assert len(events(services, "bounce")) == 2
