"""Suppression survives a secret key rotation; no secret key, no signing or hashing.

Real SMTP server, both databases: an address that hard-bounced or was erased is not mailed by
`send`, not added by `subscribers import --confirmed`, and gets no confirmation mail from the
subscribe form, after the operator rotated the secret key.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.db.models import Subscriber
from newsletter.services import build_services
from tests.bounces.messages import dsn
from tests.conftest import SECRET, Cli
from tests.delivery.conftest import FaultySMTPServer, smtp_server, smtp_server_factory  # noqa: F401
from tests.delivery.sender_fixtures import configure, seed, write_issue

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NEW_SECRET = "the-new-secret-key-9876543210"


def rotate(workspace: Path) -> None:
    """What an operator does: a new secret key, the old one kept for links already sent."""
    path = workspace / "newsletter.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(
        f'secret_key = "{SECRET}"',
        f'secret_key = "{NEW_SECRET}"\nold_secret_keys = ["{SECRET}"]'), encoding="utf-8")


def mailed(server: FaultySMTPServer, address: str) -> int:
    return sum(1 for _sender, rcpts, _data in server.messages if address in rcpts)


def subscribe_by_form(workspace: Path, run: Cli, address: str) -> None:
    """Post the public form, then flush the outbox as `serve` would."""
    from newsletter.web import create_app

    settings = load_settings(workspace)
    engine = make_engine(settings.database_url)
    app = create_app(build_services(settings, engine=engine), outbox_worker=False)
    with TestClient(app, base_url="https://news.example.org", follow_redirects=False) as client:
        answer = client.post("/subscribe/news", data={"email": address, "language": "en"})
    engine.dispose()
    assert answer.status_code < 400
    run("outbox", "send")


def import_confirmed(run: Cli, tmp_path: Path, *addresses: str) -> dict:
    csv = tmp_path / "people.csv"
    csv.write_text("email\n" + "".join(f"{a}\n" for a in addresses), encoding="utf-8")
    return run.json("subscribers", "import", str(csv), "--list", "news", "--confirmed",
                    "--consent-source", "paper form at the assembly")


def subscriber_exists(workspace: Path, address: str) -> bool:
    engine = make_engine(load_settings(workspace).database_url)
    with engine.connect() as conn:
        found = conn.scalar(select(Subscriber.id).where(Subscriber.email == address))
    engine.dispose()
    return found is not None


def test_hard_bounced_address_is_still_skipped_after_the_secret_key_rotates(
        run, workspace, db_url, smtp_server, tmp_path):  # noqa: F811
    configure(workspace, db_url, smtp_server.port)
    write_issue(workspace, slug="nov")
    bounced, *others = seed(workspace, ["en", "en", "fr"])
    run.json("send", "nov", "--yes")
    [return_path] = [s for s, rcpts, _d in smtp_server.messages if rcpts == [bounced]]
    report = tmp_path / "bounce.eml"
    report.write_bytes(dsn(return_path, bounced))
    assert run.json("bounces", "process", str(report))["by_action"] == {"suppressed": 1}

    rotate(workspace)
    write_issue(workspace, slug="dec")
    result = run.json("send", "dec", "--yes")
    assert result["sent"] == 2
    assert mailed(smtp_server, bounced) == 1  # the November issue only
    assert all(mailed(smtp_server, a) == 2 for a in others)

    report = import_confirmed(run, tmp_path, bounced)
    assert report["rejected"] == 1 and report["confirmed"] == 0

    subscribe_by_form(workspace, run, bounced)
    assert mailed(smtp_server, bounced) == 1  # no confirmation mail either


def test_erased_address_is_not_imported_or_mailed_after_the_secret_key_rotates(
        run, workspace, db_url, smtp_server, tmp_path):  # noqa: F811
    configure(workspace, db_url, smtp_server.port)
    erased, kept = seed(workspace, ["en", "en"])
    run("subscribers", "remove", erased)

    rotate(workspace)
    report = import_confirmed(run, tmp_path, erased, "newcomer@example.org")
    assert report["rejected"] == 1 and report["created"] == 1
    assert not subscriber_exists(workspace, erased)

    subscribe_by_form(workspace, run, erased)
    subscribe_by_form(workspace, run, "stranger@example.org")
    assert mailed(smtp_server, erased) == 0
    assert mailed(smtp_server, "stranger@example.org") == 1  # the form does send to others
    write_issue(workspace, slug="dec")
    run.json("send", "dec", "--yes")
    assert mailed(smtp_server, erased) == 0 and mailed(smtp_server, kept) == 1


@pytest.mark.parametrize("command", [
    ("subscribers", "import", "people.csv", "--list", "news"),
    ("subscribers", "add", "someone@example.org", "--list", "news"),
    ("subscribers", "remove", "reader0@example.org"),
    ("bounces", "process", "bounce.eml"),
    ("outbox", "send"),
    ("issue", "preview", "nov", "--as", "reader0@example.org"),
    ("send", "nov", "--yes"),
])
def test_every_command_that_signs_or_hashes_refuses_an_empty_secret_key(
        run, workspace, db_url, command):
    write_issue(workspace, slug="nov")
    seed(workspace, ["en"])
    (workspace / "people.csv").write_text("email\nnew@example.org\n", encoding="utf-8")
    (workspace / "bounce.eml").write_bytes(dsn("bounces+x@bounces.example.org", "a@b.org"))
    path = workspace / "newsletter.toml"
    path.write_text(path.read_text(encoding="utf-8").replace(SECRET, ""), encoding="utf-8")
    args = [str(workspace / a) if a in ("people.csv", "bounce.eml") else a for a in command]
    result = run(*args, ok=False)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "no secret key is set" in lines[0], result.output
    assert subscriber_exists(workspace, "reader0@example.org")
    assert not subscriber_exists(workspace, "new@example.org")
