"""People an editor adds without --confirmed are asked to confirm, in their language.

Before, `subscribers add` and `subscribers import` left them pending and never mailed them, so
they could never receive anything; only the web form sent a confirmation mail.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from newsletter.db.models import utcnow
from tests.conftest import Cli
from tests.web.conftest import BASE_URL, WebEnv, link_in


@pytest.fixture
def web_extra() -> str:
    return "max_confirmations_per_address = 1"


def _cli(web: WebEnv) -> Cli:
    return Cli(web.settings.workspace)


def _csv(tmp_path: Path, rows: str) -> str:
    path = tmp_path / "people.csv"
    path.write_text("email,name,language\n" + rows, encoding="utf-8")
    return str(path)


def test_a_pending_person_added_by_the_cli_gets_a_mail_in_their_language_and_can_confirm(
        web: WebEnv) -> None:
    list_id = web.add_list()
    run = _cli(web)
    out = run("subscribers", "add", "ines@example.org", "--list", "news", "--language", "es",
              "--name", "Inés").output
    assert "pending" in out and "1 confirmation mail(s) queued" in out
    assert run.json("outbox", "send")["sent"] == 1
    [mail] = web.smtp.messages
    assert mail["To"].addresses[0].addr_spec == "ines@example.org"
    assert mail["Content-Language"] == "es"
    path = link_in(mail, f"{BASE_URL}/confirm/").removeprefix(BASE_URL)
    assert web.client.post(path).status_code == 200
    sid = web.subscriber("ines@example.org")["id"]
    assert web.subscription(sid, list_id)["status"] == "confirmed"


def test_no_invite_holds_the_mail_and_invite_sends_it_later_once(web: WebEnv) -> None:
    web.add_list()
    run = _cli(web)
    out = run("subscribers", "add", "leo@example.org", "--list", "news", "--no-invite").output
    assert "queued" not in out and web.outbox() == []
    assert run.json("subscribers", "invite", "--list", "news", "--dry-run") == {"would_queue": 1}
    assert run.json("subscribers", "invite", "--list", "news") == {"queued": 1, "throttled": 0}
    assert run.json("subscribers", "invite", "--list", "news") == {"queued": 0, "throttled": 0}
    assert [row["recipient"] for row in web.outbox("confirm")] == ["leo@example.org"]


def test_an_import_asks_each_new_pending_person_once_and_not_the_confirmed_or_form_ones(
        web: WebEnv, tmp_path: Path) -> None:
    list_id = web.add_list()
    web.add_subscriber("old@example.org", list_id, status="confirmed")
    web.client.post("/subscribe/news", data={"email": "form@example.org"})
    web.deliver()
    before = len(web.smtp.messages)
    run = _cli(web)
    rows = ("a@example.org,Ana,fr\nb@example.org,Bo,en\n"
            "old@example.org,Old,en\nform@example.org,F,en\n")
    report = run.json("subscribers", "import", _csv(tmp_path, rows), "--list", "news")
    assert report["invites"] == {"queued": 2, "throttled": 0}
    run.json("outbox", "send")
    new = {m["To"].addresses[0].addr_spec: m["Content-Language"]
           for m in web.smtp.messages[before:]}
    assert new == {"a@example.org": "fr", "b@example.org": "en"}
    # Importing the same file again asks nobody twice.
    again = run.json("subscribers", "import", _csv(tmp_path, rows), "--list", "news")
    assert "invites" not in again or again["invites"]["queued"] == 0


def test_a_confirmed_import_and_a_dry_run_queue_nothing(web: WebEnv, tmp_path: Path) -> None:
    web.add_list()
    run = _cli(web)
    path = _csv(tmp_path, "c@example.org,C,en\n")
    run("subscribers", "import", path, "--list", "news", "--dry-run")
    run("subscribers", "import", path, "--list", "news", "--confirmed",
        "--consent-source", "AGM sheet")
    assert web.outbox() == []


def test_invite_works_through_a_list_in_batches_and_asks_each_person_once(
        web: WebEnv, tmp_path: Path, monkeypatch) -> None:
    from newsletter.audience import invite

    monkeypatch.setattr(invite, "BATCH", 2)
    web.add_list()
    web.add_list("other", "Other")
    run = _cli(web)
    people = [f"p{i}@example.org" for i in range(5)]
    for busy in (people[1], people[3]):  # they had their one confirmation mail of the day
        run("subscribers", "add", busy, "--list", "other")
    run("subscribers", "import", _csv(tmp_path, "".join(f"{p},,en\n" for p in people)),
        "--list", "news", "--no-invite")
    assert run.json("subscribers", "invite", "--list", "news", "--dry-run") == {"would_queue": 5}
    assert run.json("subscribers", "invite", "--list", "news") == {"queued": 3, "throttled": 2}
    assert sorted(row["recipient"] for row in web.outbox("confirm")) == people
    # The two throttled are still never asked: a later run tries them again, and only them.
    assert run.json("subscribers", "invite", "--list", "news", "--dry-run") == {"would_queue": 2}
    assert run.json("subscribers", "invite", "--list", "news") == {"queued": 0, "throttled": 2}


def test_a_form_request_whose_mail_was_held_back_is_asked_by_invite_the_next_day(
        web: WebEnv) -> None:
    web.add_list()
    web.add_list("other", "Other")
    for slug in ("other", "news"):  # one confirmation mail a day: the second request waits
        web.client.post(f"/subscribe/{slug}", data={"email": "kim@example.org"})
        web.deliver()
    assert [row["recipient"] for row in web.outbox("confirm")] == ["kim@example.org"]
    run = _cli(web)
    assert run.json("subscribers", "invite", "--list", "other", "--dry-run") == {"would_queue": 0}
    with web.engine.begin() as conn:  # a day later
        conn.execute(text("UPDATE outbox SET created_at = :t"),
                      {"t": utcnow() - timedelta(days=1, minutes=1)})
    assert run.json("subscribers", "invite", "--list", "news") == {"queued": 1, "throttled": 0}
    assert run.json("subscribers", "invite", "--list", "news") == {"queued": 0, "throttled": 0}
