"""Hostile bounce reports (tests/data/hostile/bounces/): each is recorded as unreadable or
unmatched, nothing crashes, nobody is suppressed, and good reports around them still count."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from newsletter.bounces.receiver import BounceServer, Processor
from newsletter.services import Services
from tests.bounces.messages import dsn
from tests.bounces.test_receiver import deliveries, events, suppression, verp
from tests.delivery.sender_fixtures import seed

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile" / "bounces"
HOSTILE = sorted(CORPUS.glob("*.eml"))
UNREADABLE = {"01-nested-1000-levels.eml", "02-nested-30-rfc822.eml"}


def test_the_corpus_has_at_least_ten_reports() -> None:
    assert len(HOSTILE) >= 10


def test_bounces_process_records_each_hostile_report_and_the_good_ones_around_them(
        run, services: Services, tmp_path: Path) -> None:
    emails = seed(services.settings.workspace, ["en", "en"])
    ids = deliveries(services, emails, "nov")
    new = tmp_path / "Maildir" / "new"
    new.mkdir(parents=True)
    (tmp_path / "Maildir" / "cur").mkdir()
    (new / "0-good").write_bytes(dsn(verp(services, ids[emails[0]]), emails[0]))
    for path in HOSTILE:
        (new / f"1-{path.name}").write_bytes(path.read_bytes())
    (new / "2-good").write_bytes(dsn(verp(services, ids[emails[1]]), emails[1]))
    result = run.json("bounces", "process", str(tmp_path / "Maildir"))
    actions = {Path(m["message"]).name: m["action"] for m in result["messages"]}
    assert actions.pop("0-good") == actions.pop("2-good") == "suppressed"
    for name, action in actions.items():
        expected = "unreadable" if name[2:] in UNREADABLE else "unmatched"
        assert action == expected, name
    assert len(actions) == len(HOSTILE)
    assert suppression(services, emails[0]) == suppression(services, emails[1]) == "bounce"
    assert len(events(services, "bounce-unmatched")) == len(HOSTILE)
    again = run.json("bounces", "process", str(tmp_path / "Maildir"))
    assert again["by_action"] == {"duplicate": len(HOSTILE) + 2}
    assert len(events(services, "bounce-unmatched")) == len(HOSTILE)
    listed = run("bounces", "list").output.splitlines()
    assert len(listed) == len(HOSTILE) + 2  # one line each: no header's CR/LF splits a line


@pytest.fixture
def receiver(services: Services) -> BounceServer:
    with BounceServer(Processor.from_settings(services.settings, services.engine),
                      port=0) as server:
        yield server


def test_the_receiver_answers_each_hostile_report_for_good_and_goes_on(
        services: Services, receiver: BounceServer) -> None:
    emails = seed(services.settings.workspace, ["en"])
    did = deliveries(services, emails, "nov")[emails[0]]
    codes = {}
    with smtplib.SMTP(receiver.host, receiver.port, timeout=30) as client:
        for path in HOSTILE:
            client.ehlo()
            client.mail("")
            client.rcpt("bounces@bounces.example.org")
            codes[path.name] = client.data(path.read_bytes())[0]
        assert client.sendmail("", [verp(services, did)],
                               dsn(verp(services, did), emails[0])) == {}
    # 250: recorded; 554: recorded as unreadable. Never 451, which would come back forever.
    assert codes == {p.name: 554 if p.name in UNREADABLE else 250 for p in HOSTILE}
    assert suppression(services, emails[0]) == "bounce"
    assert len(events(services, "bounce-unmatched")) == len(HOSTILE)
