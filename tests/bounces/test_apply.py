"""`apply_report` and `report_key` called directly: what one parsed report records and answers.

These are the fast service-level checks of the bounce policy (no SMTP, no parsing), so that
mutation testing can run them for each of `apply_report`'s mutants.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.bounces.policy import BouncePolicy, Outcome, apply_report, report_key
from newsletter.bounces.report import BounceReport
from newsletter.config import ConfigError, load_settings
from newsletter.db.models import Delivery, Event, utcnow
from newsletter.services import Services
from tests.bounces.test_receiver import deliveries, suppression
from tests.delivery.sender_fixtures import seed

FULL = {"status": "5.1.1", "action": "failed", "diagnostic": "smtp; 550 5.1.1 user unknown",
        "source": "dsn", "reason": "dsn status"}


def _apply(services: Services, report: BounceReport, key: str = "k1", **kw: object) -> Outcome:
    return apply_report(services.engine, report, key=key,
                        address_key=services.keyring.address_key, **kw)  # type: ignore[arg-type]


def _events(services: Services) -> list[tuple[str, str, int | None, int | None, dict]]:
    e = Event.__table__.c
    with services.engine.connect() as conn:
        rows = conn.execute(select(e.kind, e.source, e.subscriber_id, e.list_id, e.data)
                            .where(e.kind.in_(("bounce", "complaint", "bounce-unmatched")))
                            .order_by(e.id)).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _last_reply(services: Services, did: int) -> str | None:
    with services.engine.connect() as conn:
        return conn.scalar(select(Delivery.last_reply).where(Delivery.id == did))


def _ids(services: Services, email: str) -> tuple[int, int]:
    """The subscriber's id and the id of list `news`."""
    from newsletter.db.models import MailingList, Subscriber
    with services.engine.connect() as conn:
        return (conn.scalar(select(Subscriber.id).where(Subscriber.email == email)),
                conn.scalar(select(MailingList.id).where(MailingList.slug == "news")))


def test_a_matched_hard_bounce_is_one_event_with_everything_the_report_said(
        services: Services) -> None:
    [email] = seed(services.settings.workspace, ["en"])
    did = deliveries(services, [email], "nov")[email]
    sid, list_id = _ids(services, email)
    # The report names another address: the delivery's subscriber is the one shown and acted on.
    report = BounceReport("hard", did, ("mallory@evil.example",), **FULL)
    outcome = _apply(services, report, key="abc")
    assert outcome == Outcome(kind="hard", action="suppressed", note="", delivery_id=did,
                              issue="nov", address=f"{email[0]}***@{email.split('@')[1]}",
                              status="5.1.1", unsubscribed=False)
    assert _events(services) == [("bounce", "bounce:abc", sid, list_id, {
        "kind": "hard", "status": "5.1.1", "action": "failed",
        "diagnostic": "smtp; 550 5.1.1 user unknown", "format": "dsn", "delivery": did,
        "reason": "dsn status", "issue": "nov", "list": "news", "outcome": "suppressed",
        "note": ""})]
    assert suppression(services, email) == "bounce"
    assert suppression(services, "mallory@evil.example") is None
    assert _last_reply(services, did) == "bounced: hard 5.1.1 smtp; 550 5.1.1 user unknown"


def test_unmatched_reports_keep_up_to_ten_masked_recipients_and_say_why(
        services: Services) -> None:
    recipients = tuple(f"user{n}@example.net" for n in range(12))
    forged = _apply(services, BounceReport("hard", None, recipients, **FULL), key="a")
    gone = _apply(services, BounceReport("soft", 987654, ("amelie@example.net",), **FULL),
                  key="b")
    assert (forged.action, forged.note, forged.address, forged.issue, forged.delivery_id) == (
        "unmatched", "no valid VERP token", "u***@example.net", "", None)
    assert (gone.action, gone.note, gone.delivery_id) == ("unmatched", "delivery not found",
                                                          987654)
    [(kind, source, sid, list_id, data), second] = _events(services)
    assert (kind, source, sid, list_id) == ("bounce-unmatched", "bounce:a", None, None)
    assert data == {"kind": "hard", "status": "5.1.1", "action": "failed",
                    "diagnostic": "smtp; 550 5.1.1 user unknown", "format": "dsn",
                    "delivery": None, "reason": "dsn status",
                    "recipients": ["u***@example.net"] * 10,
                    "outcome": "unmatched", "note": "no valid VERP token"}
    assert second[4]["recipients"] == ["a***@example.net"]
    assert (second[4]["outcome"], second[4]["note"]) == ("unmatched", "delivery not found")


def test_an_unreadable_report_is_recorded_with_its_reason_and_names_nobody(
        services: Services) -> None:
    [email] = seed(services.settings.workspace, ["en"])
    did = deliveries(services, [email], "nov")[email]
    report = BounceReport("unreadable", did, (), diagnostic="parse took too long")
    outcome = _apply(services, report, key="u")
    assert (outcome.action, outcome.note, outcome.address) == (
        "unreadable", "parse took too long", f"{email[0]}***@{email.split('@')[1]}")
    [(kind, source, sid, list_id, data)] = _events(services)
    assert (kind, source, sid, list_id) == ("bounce-unmatched", "bounce:u", None, None)
    assert (data["outcome"], data["note"], data["issue"]) == (
        "unreadable", "parse took too long", "nov")
    assert suppression(services, email) is None and _last_reply(services, did) is None
    # Nothing named: the address shown is empty.
    nobody = _apply(services, BounceReport("unreadable", None, (), diagnostic="x"), key="v")
    assert (nobody.address, nobody.delivery_id) == ("", None)


@pytest.mark.parametrize(("kind", "note", "marked"), [
    ("policy", "policy block: address kept", "bounced: policy 5.1.1"),
    ("autoreply", "auto-reply: address kept", None),
    ("unknown", "", None),
])
def test_reports_that_prove_nothing_are_recorded_and_only_a_block_marks_the_delivery(
        services: Services, kind: str, note: str, marked: str | None) -> None:
    [email] = seed(services.settings.workspace, ["en"])
    did = deliveries(services, [email], "nov")[email]
    outcome = _apply(services, BounceReport(kind, did, (), **FULL))
    assert (outcome.action, outcome.note, outcome.issue) == ("recorded", note, "nov")
    [(event, _, _, _, data)] = _events(services)
    assert (event, data["outcome"], data["note"]) == ("bounce", "recorded", note)
    assert suppression(services, email) is None
    reply = _last_reply(services, did)
    assert reply == marked if marked is None else reply.startswith(marked)


def test_a_complaint_is_a_complaint_event_and_marks_the_delivery(services: Services) -> None:
    [email] = seed(services.settings.workspace, ["en"])
    did = deliveries(services, [email], "nov")[email]
    outcome = _apply(services, BounceReport("complaint", did, (), diagnostic="abuse",
                                            source="arf"))
    assert (outcome.action, outcome.note, outcome.unsubscribed) == (
        "suppressed", "unsubscribed from news", True)
    [(event, _, _, _, data)] = _events(services)
    assert (event, data["format"], data["outcome"]) == ("complaint", "arf", "suppressed")
    assert suppression(services, email) == "complaint"
    assert _last_reply(services, did) == "bounced: complaint abuse"
    # The consent trail says who unsubscribed them and why.
    e = Event.__table__.c
    with services.engine.connect() as conn:
        left = conn.execute(select(e.source, e.subscriber_id, e.list_id, e.data)
                            .where(e.kind == "unsubscribe")).all()
    assert [tuple(r) for r in left] == [
        ("complaint (ARF feedback report)", *_ids(services, email), {"via": "complaint"})]


def test_the_same_key_is_a_duplicate_for_the_same_subscriber_only(services: Services) -> None:
    amelie, bruno = seed(services.settings.workspace, ["en", "en"])
    ids = deliveries(services, [amelie, bruno], "nov")
    soft = {"status": "4.2.2", "action": "failed"}
    first = _apply(services, BounceReport("soft", ids[amelie], (), **soft), key="same")
    again = _apply(services, BounceReport("soft", ids[amelie], (), **soft), key="same")
    other = _apply(services, BounceReport("soft", ids[bruno], (), **soft), key="same")
    lost = _apply(services, BounceReport("hard", None, ("x@example.net",)), key="same")
    lost_again = _apply(services, BounceReport("hard", None, ("x@example.net",)), key="same")
    assert [o.action for o in (first, again, other, lost, lost_again)] == [
        "counted", "duplicate", "counted", "unmatched", "duplicate"]
    assert (again.note, again.issue, again.delivery_id, again.status) == (
        "report already processed", "nov", ids[amelie], "4.2.2")
    assert len(_events(services)) == 3


def test_the_policy_given_and_the_time_given_are_the_ones_applied(services: Services) -> None:
    [email] = seed(services.settings.workspace, ["en"])
    ids = [deliveries(services, [email], f"issue-{n}")[email] for n in range(2)]
    at = utcnow() - timedelta(days=3)
    policy = BouncePolicy(soft_limit=2, soft_days=1)
    outcomes = [_apply(services, BounceReport("soft", did, (), status="4.2.2"), key=f"s{did}",
                       policy=policy, now=at) for did in ids]
    assert [o.note for o in outcomes] == ["1 of 2 within 1 days", "2 soft bounces within 1 days"]
    with services.engine.connect() as conn:
        times = conn.scalars(select(Event.created_at).where(Event.kind == "bounce")).all()
    assert [t.replace(tzinfo=None) for t in times] == [at.replace(tzinfo=None)] * 2


def test_without_a_policy_five_soft_bounces_in_seven_days_suppress(services: Services) -> None:
    [email] = seed(services.settings.workspace, ["en"])
    ids = [deliveries(services, [email], f"issue-{n}")[email] for n in range(5)]
    before = utcnow()
    notes = [_apply(services, BounceReport("soft", did, (), status="4.2.2"), key=f"s{did}").note
             for did in ids]
    assert notes[:4] == [f"{n} of 5 within 7 days" for n in (1, 2, 3, 4)]
    assert notes[4] == "5 soft bounces within 7 days"
    with services.engine.connect() as conn:
        first = conn.scalar(select(Event.created_at).where(Event.kind == "bounce"))
    assert first.replace(tzinfo=None) >= before.replace(tzinfo=None)


def _settings(tmp_path: Path, **bounces: object):  # type: ignore[no-untyped-def]
    return load_settings(tmp_path, environ={}, overrides={"bounces": bounces})


def test_the_policy_limits_come_from_the_settings_and_nonsense_is_refused(
        tmp_path: Path) -> None:
    assert BouncePolicy.from_settings(_settings(tmp_path)) == BouncePolicy(5, 7.0)
    assert BouncePolicy.from_settings(_settings(tmp_path, soft_limit=1, soft_days=0.5)) == (
        BouncePolicy(1, 0.5))
    with pytest.raises(ConfigError) as limit:
        BouncePolicy.from_settings(_settings(tmp_path, soft_limit=0))
    assert str(limit.value) == "[bounces] soft_limit: must be at least 1"
    with pytest.raises(ConfigError) as days:
        BouncePolicy.from_settings(_settings(tmp_path, soft_days=0))
    assert str(days.value) == "[bounces] soft_days: must be more than 0"


HEAD = (b"Received: from mx1.example.net\r\nFrom: MAILER-DAEMON@mx.example.net\r\n"
        b"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nSubject: Delivery report\r\n")


def test_report_keys_are_stable_across_versions() -> None:
    # Keys already stored in events must keep naming the same reports after an upgrade.
    with_id = b"Message-ID: <r1@mx.example.net>\r\n" + HEAD + b"\r\nbody\r\n"
    assert report_key(with_id) == "65ea90d9ba3a3b18dab8cc479d7dd7b1"
    assert report_key(HEAD + b"\r\nbody\r\n") == "4ecf34569a346508923817bf00393da9"
    assert report_key(HEAD, "0123abcd") == "70a7c51e48422318531d7ab061ac0317"
    assert len(report_key(b"")) == 32


def test_a_message_id_names_the_report_whatever_else_differs() -> None:
    one = b"Message-ID:  <r1@mx.example.net>\r\n" + HEAD + b"\r\nfirst\r\n"
    folded = b"Message-ID:\r\n <r1@mx.example.net>\r\nSubject: other\r\n\r\nsecond\r\n"
    assert report_key(one) == report_key(folded) == report_key(one, "digest")
    assert report_key(one) != report_key(one.replace(b"<r1@", b"<r2@"))


def test_without_message_id_the_body_and_the_named_headers_make_the_key() -> None:
    crlf = HEAD + b"\r\nbody\r\n"
    traced = b"Delivered-To: bounces@example.org\r\nReturn-Path: <>\r\n" + crlf
    assert report_key(crlf) == report_key(traced)
    assert report_key(crlf) != report_key(HEAD + b"\r\nother body\r\n")
    # Line endings: the body starts after the blank line either way.
    assert report_key(b"From: a\n\nbody") == report_key(b"From: a\r\n\r\nbody")
    # A head alone: the digest of the whole report stands in for its body.
    assert report_key(HEAD, "d1") == report_key(b"Received: x\r\n" + HEAD, "d1")
    assert report_key(HEAD, "d1") != report_key(HEAD, "d2")
    assert report_key(HEAD) != report_key(HEAD + b"X-Other: 1\r\n")


def test_bounces_list_joins_unmatched_recipients_and_keeps_rows_of_erased_subscribers(
        services: Services) -> None:
    from newsletter.audience.subscribers import remove_subscriber
    from newsletter.bounces.policy import recent_reports

    [email] = seed(services.settings.workspace, ["en"])
    did = deliveries(services, [email], "nov")[email]
    now = utcnow()
    _apply(services, BounceReport("hard", did, (), **FULL), key="m", now=now - timedelta(hours=2))
    _apply(services, BounceReport("hard", None, ("amelie@example.net", "bruno@example.org")),
           key="u", now=now - timedelta(hours=1))
    remove_subscriber(services.engine, email=email, address_key=services.keyring.address_key)
    rows = recent_reports(services.engine, now - timedelta(days=1))
    assert [(r.event, r.address, r.outcome) for r in rows] == [
        ("bounce-unmatched", "a***@example.net, b***@example.org", "unmatched"),
        ("bounce", "", "")]
    # Erased: the event stays (it names the report, not the person), emptied, shown empty.
    erased = rows[1]
    assert (erased.kind, erased.status, erased.issue, erased.note, erased.diagnostic) == (
        "", "", "", "", "")


def test_a_report_with_raw_8bit_headers_still_gets_a_key() -> None:
    # Non-UTF-8 bytes in a Message-ID or From (seen from broken relays) are replaced, not fatal.
    assert report_key(b"Message-ID: <caf\xe9@mx>\r\n\r\nx") == (
        report_key(b"Message-ID: <caf\xe8@mx>\r\n\r\ny"))
    assert report_key(b"From: Jos\xe9\r\n\r\nbody") == report_key(b"From: Jos\xe8\r\n\r\nbody")
