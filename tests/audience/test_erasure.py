"""Erasure leaves no copy of the address or the name: in any table, on SQLite in any file.

The person leaves traces the way a real one does: the subscribe form (with a referring URL that
carries the address), confirmation and preferences mails in the outbox, a changed name, a
delivery with the server's reply, a hard bounce (its reply quoted in the suppression), an
unmatched bounce that names them. Then `newsletter subscribers remove` runs, and the test reads
every row of every table as text and, on SQLite, the raw bytes of the database, WAL and journal.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, insert, select, text

from newsletter.audience.erasure import address_pattern, erase, spellings
from newsletter.audience.listedits import add_list
from newsletter.audience.optin import OptIn, RequestMeta, confirm, subscribe
from newsletter.audience.portability import export_data
from newsletter.audience.preferences import send_preferences_link, update_preferences
from newsletter.audience.subscribers import add_subscriber
from newsletter.bounces.policy import apply_report
from newsletter.bounces.report import BounceReport
from newsletter.db.models import (
    Delivery,
    Event,
    Issue,
    OutboxMessage,
    Subscriber,
    Suppression,
    utcnow,
)
from newsletter.keyring import address_hash
from newsletter.links import confirm_url
from newsletter.web.mails import SystemMails
from tests.conftest import akey

TYPED = "Zoe_Quist+News@Example.ORG"  # as the operator types it
ADDRESS = "zoe_quist+news@example.org"
NAME = "Zoë Quistorp"
NEW_NAME = "Zoë Quistorp-Vance"
REFERRER = "https://partner.example.net/join?email=Zoe_Quist%2BNews%40Example.org&utm=x"
# What must not survive, as bytes, in any case: the local part (it is in every spelling of the
# address, percent-encoded or not) and the family name.
MARKERS = (b"zoe_quist", b"quistorp")


def all_rows_as_text(engine: Engine) -> str:
    """Every row of every table, as one lower-case text (bytes columns decoded)."""
    meta = MetaData()
    meta.reflect(engine)
    parts = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", "replace")
                    parts.append(json.dumps(value, default=str, ensure_ascii=False))
    return "\n".join(parts).lower()


def database_files(engine: Engine) -> list[Path]:
    path = Path(str(engine.url.database))
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists()]


def leave_traces(services) -> dict[str, int]:
    """The person's life in the newsletter, through the real services; returns ids."""
    engine = services.engine
    news = add_list(engine, slug="news", name="News", languages=["en", "fr"],
                    default_language="en").id
    add_subscriber(engine, email="ann@example.org", list_slug="news", address_key=akey(services),
                   name="Ann Other", confirmed=True, consent_source="paper form")
    ctx = OptIn.from_settings(services.settings, engine, SystemMails(services.settings))
    meta = RequestMeta(ip="192.0.2.7", user_agent="Mozilla/5.0 Zoe", source=REFERRER,
                       consent_text="I agree")
    result = subscribe(ctx, list_slug="news", email=TYPED, name=NAME, language="fr", meta=meta)
    sid = result.subscriber_id
    assert sid is not None
    token = confirm_url("https://x", ctx.signer, sid, news).rsplit("/", 1)[1]
    confirm(ctx, token, meta=meta)
    update_preferences(ctx, subscriber_id=sid, list_id=news, name=NEW_NAME, language="fr",
                       list_ids={news}, meta=meta)
    send_preferences_link(ctx, email=ADDRESS, language="fr", meta=meta)
    now = utcnow()
    with engine.begin() as conn:
        issue = conn.execute(insert(Issue).values(slug="2026-12", list_id=news, status="sent",
                                                  created_at=now, data={})
                             .returning(Issue.id)).scalar_one()
        delivery = conn.execute(insert(Delivery).values(
            issue_id=issue, subscriber_id=sid, list_id=news, language="fr", status="failed",
            attempts=1, created_at=now,
            last_reply=f"550 5.1.1 <{ADDRESS.upper()}>: mailbox unavailable")
            .returning(Delivery.id)).scalar_one()
    said = f"smtp; 550 5.1.1 <{TYPED}>: Recipient address rejected"
    hard = BounceReport(kind="hard", delivery_id=delivery, recipients=(ADDRESS,),
                        status="5.1.1", action="failed", diagnostic=said, source="dsn")
    assert apply_report(engine, hard, key="k1", address_key=akey(services)).action == "suppressed"
    unmatched = BounceReport(kind="hard", delivery_id=None, recipients=(ADDRESS,),
                             status="5.1.1", action="failed", diagnostic=said, source="dsn")
    outcome = apply_report(engine, unmatched, key="k2", address_key=akey(services))
    assert outcome.action == "unmatched"
    return {"sid": sid, "news": news}


def test_traces_are_really_there_before_erasure(services) -> None:
    leave_traces(services)
    rows = all_rows_as_text(services.engine)
    assert "zoe_quist%2bnews%40example.org" in rows and "quistorp" in rows
    with services.engine.connect() as conn:
        assert conn.scalar(select(Suppression.detail)).count(TYPED) == 1
        assert len(conn.execute(select(OutboxMessage.id)).all()) == 2


def test_erasure_leaves_the_address_and_name_in_no_table(services, run) -> None:
    leave_traces(services)
    result = run("subscribers", "remove", TYPED)
    assert "erased: 1 subscriber, 1 subscriptions, 1 deliveries, 2 queued or sent mails" in (
        result.output)
    rows = all_rows_as_text(services.engine)
    for marker in MARKERS:
        assert marker.decode() not in rows
    for form in spellings(ADDRESS):
        assert form not in rows
    assert "zoë" not in rows
    with services.engine.connect() as conn:
        suppression = conn.execute(select(Suppression)).one()
        others = conn.scalars(select(Subscriber.email)).all()
        kinds = conn.scalars(text("SELECT kind FROM events ORDER BY id")).all()
    # The address survives only as its keyed hash; the bounce's own words stay, minus it.
    assert suppression.email_hash == address_hash(ADDRESS, akey(services))
    assert suppression.detail == "5.1.1 smtp; 550 5.1.1 <[erased]>: Recipient address rejected"
    assert others == ["ann@example.org"]
    assert kinds[-1] == "erase" and "subscribe" in kinds  # anonymous facts stay


@pytest.mark.sqlite_only  # PostgreSQL's files belong to the server; the table test covers it
def test_on_sqlite_no_database_file_holds_the_address_or_the_name(services, run) -> None:
    leave_traces(services)
    before = b"".join(path.read_bytes() for path in database_files(services.engine)).lower()
    assert all(marker in before for marker in MARKERS)
    run("subscribers", "remove", TYPED)
    files = database_files(services.engine)
    assert files[0].name == "newsletter.db"
    for path in files:
        data = path.read_bytes().lower()
        for marker in MARKERS:
            assert marker not in data, f"{marker!r} is still in {path.name}"
    assert b"ann other" in files[0].read_bytes().lower()  # the others are all there


def test_erasure_by_subscriber_id_is_the_same_and_repeating_it_is_harmless(services) -> None:
    ids = leave_traces(services)
    report = erase(services.engine, subscriber_id=ids["sid"], address_key=akey(services),
                   source="web")
    assert (report.subscribers, report.outbox, report.suppressed) == (1, 2, False)
    assert "quistorp" not in all_rows_as_text(services.engine)
    again = erase(services.engine, subscriber_id=ids["sid"], address_key=akey(services),
                   source="web")
    assert again.subscribers == 0
    assert export_data(services.engine, email="ann@example.org")["subscriber"]["name"] == (
        "Ann Other")


def test_an_address_inside_a_longer_one_is_left_alone() -> None:
    pattern = address_pattern("a@example.org")
    assert pattern.sub("#", "xa@example.org a@example.org.uk <A@EXAMPLE.ORG>, a%40example.org.") \
        == "xa@example.org a@example.org.uk <#>, #."
    assert pattern.sub("#", "/?e=A%40Example.org&f=b.a@example.org") == "/?e=#&f=b.a@example.org"


def test_erasing_an_unknown_address_still_suppresses_it(run) -> None:
    result = run("subscribers", "remove", "nobody@example.org")
    assert "no subscriber nobody@example.org" in result.output
    again = run("subscribers", "remove", "nobody@example.org", "--json", ok=True)
    assert json.loads(again.output)["suppressed"] is False  # already on the list


def test_an_idn_address_is_found_percent_encoded_json_escaped_and_in_punycode(services, run):
    from urllib.parse import quote

    address = "jose.garcia@bücher.de"
    add_list(services.engine, slug="news", name="News", languages=["en"], default_language="en")
    add_subscriber(services.engine, email=address, list_slug="news", address_key=akey(services))
    with services.engine.begin() as conn:  # unmatched traces, tied to nobody
        conn.execute(insert(Event).values(kind="manage", source=f"https://x/?e={quote(address)}",
                                          data={"diagnostic": f"550 <{address.upper()}>"}))
        conn.execute(insert(Event).values(kind="bounce", source="dsn",
                                          data={"to": "JOSE.GARCIA@xn--bcher-kva.de"}))
    run("subscribers", "remove", address.upper())
    rows = all_rows_as_text(services.engine)
    for trace in ("bücher", "b%c3%bccher", "b\\u00fccher", "xn--bcher-kva"):
        assert trace not in rows
    with services.engine.connect() as conn:
        event = conn.execute(select(Event.source, Event.data).where(Event.kind == "manage")).one()
    assert event.source == "https://x/?e=[erased]"
    assert event.data == {"diagnostic": "550 <[erased]>"}
