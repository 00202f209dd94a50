"""CSV import: mapping, validation, merging, reporting, strictness, idempotence."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.audience.importer import ImportFileError, import_csv
from newsletter.audience.subscribers import add_subscriber, iter_subscribers, remove_subscriber
from newsletter.db.models import Event, Subscriber
from newsletter.db.tables import EVENTS, REQUESTS, SUBSCRIBERS, SUBSCRIPTIONS
from newsletter.errors import ValidationError
from tests.audience.conftest import write

MIXED = (
    "\ufeffEmail;Name;Language;Organisation\r\n"
    "amina@example.org;Amina Diallo;fr;Réseau Sahel\r\n"
    "not-an-address;Bad Row;en;X\r\n"
    "carlos@example.org;Carlos Méndez;de;Red\r\n"
    "AMINA@Example.org;;fr;\r\n"
    "eve@example.org;=HYPERLINK(\"http://evil\");en;\r\n"
    "li@example.org;\"Li\r\nWei\";en;Asia Forum\r\n"
    "jose@bücher.de;José Bücher;es;\r\n"
)




def key(services) -> str:
    """The address key suppressions are hashed with."""
    return services.keyring.address_key


def do_import(services, path: Path, **kw):
    return import_csv(services.engine, path=path, list_slug="news", address_key=key(services), **kw)


def emails(services) -> list[str]:
    return [r.email for r in iter_subscribers(services.engine, list_slug="news")]


def test_mixed_file_lands_good_rows_and_reports_each_bad_one_with_its_line(services, news,
                                                                           tmp_path):
    report = do_import(services, write(tmp_path, MIXED))
    reasons = {p.line: p.reason for p in report.rejected}
    assert set(reasons) == {3, 4, 6}
    assert "invalid email" in reasons[3]
    assert "'de' is not offered" in reasons[4]
    assert "formula" in reasons[6]
    assert report.duplicates_in_file == 1
    assert sorted(emails(services)) == ["amina@example.org", "jose@bücher.de", "li@example.org"]
    li = next(r for r in iter_subscribers(services.engine) if r.email == "li@example.org")
    assert li.name == "Li Wei"
    assert li.attributes == {"Organisation": "Asia Forum"}
    assert any(w.line == 7 for w in report.warnings)


def test_reimporting_the_same_file_changes_nothing(services, news, tmp_path):
    path = write(tmp_path, MIXED)
    do_import(services, path)
    second = do_import(services, path)
    assert second.merge.created == 0
    assert second.merge.updated == 0
    assert second.merge.subscribed == 0
    assert second.merge.unchanged == 3


def test_strict_import_writes_nothing_when_any_row_is_bad(services, news, tmp_path):
    report = do_import(services, write(tmp_path, MIXED), strict=True)
    assert not report.committed
    assert emails(services) == []


def test_dry_run_reports_the_same_counts_but_writes_nothing(services, news, tmp_path):
    report = do_import(services, write(tmp_path, MIXED), dry_run=True)
    assert report.merge.created == 3
    assert emails(services) == []


def test_unknown_language_can_fall_back_to_the_list_default(services, news, tmp_path):
    report = do_import(services, write(tmp_path, "email,language\nx@example.org,de\n"),
                       fallback_language=True)
    assert not report.rejected
    row = next(iter_subscribers(services.engine))
    assert row.language == "en"


def test_comma_file_with_regional_language_tags(services, news, tmp_path):
    do_import(services, write(tmp_path, "name,email,lang\nAna,ana@example.org,es-MX\n"))
    assert next(iter_subscribers(services.engine)).language == "es"


def test_imported_rows_are_pending_unless_confirmed_with_a_source(services, news, tmp_path):
    path = write(tmp_path, "email\na@example.org\n")
    do_import(services, path)
    assert next(iter_subscribers(services.engine)).status == "pending"
    with pytest.raises(ValidationError):
        do_import(services, path, confirmed=True)
    do_import(services, path, confirmed=True, consent_source="paper form 2026-10")
    assert next(iter_subscribers(services.engine)).status == "confirmed"
    with services.engine.connect() as conn:
        sources = conn.scalars(select(Event.source).where(Event.kind == "import-confirmed")).all()
    assert sources == ["paper form 2026-10"]


def test_import_never_confirms_a_suppressed_address(services, news, tmp_path):
    add_subscriber(services.engine, email="gone@example.org", list_slug="news",
                   address_key=key(services))
    remove_subscriber(services.engine, email="gone@example.org", address_key=key(services))
    report = do_import(services, write(tmp_path, "email\ngone@example.org\n"), confirmed=True,
                       consent_source="old list")
    assert [p.reason for p in report.rejected] == ["address is suppressed"]
    assert emails(services) == []


def test_unsubscribed_people_are_not_resubscribed_by_import(services, news, tmp_path):
    add_subscriber(services.engine, email="a@example.org", list_slug="news",
                   address_key=key(services))
    remove_subscriber(services.engine, email="a@example.org", list_slug="news",
                      address_key=key(services))
    report = do_import(services, write(tmp_path, "email\na@example.org\n"), confirmed=True,
                       consent_source="x")
    assert report.merge.kept_unsubscribed == 1
    assert next(iter_subscribers(services.engine)).status == "unsubscribed"


def test_duplicates_across_batches_are_merged_once(services, news, tmp_path):
    lines = ["email,name"] + [f"u{i}@example.org,U{i}" for i in range(2500)]
    lines.append("u1@example.org,Later Name")
    report = do_import(services, write(tmp_path, "\n".join(lines) + "\n"))
    assert report.accepted == 2500
    assert report.duplicates_in_file == 1
    with services.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Subscriber)) == 2500
        name = conn.scalar(select(Subscriber.name).where(Subscriber.email == "u1@example.org"))
    assert name == "Later Name"


def test_file_without_email_column_is_a_clear_error(services, news, tmp_path):
    with pytest.raises(ImportFileError, match="no email column"):
        do_import(services, write(tmp_path, "name,lang\nA,en\n"))


def test_a_row_that_is_not_utf8_is_rejected_alone(services, news, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("email,name\na@example.org,Jos\xe9\nb@example.org,Bea\n".encode("latin-1"))
    report = do_import(services, path)
    assert [(p.line, "not UTF-8" in p.reason) for p in report.rejected] == [(2, True)]
    assert emails(services) == ["b@example.org"]


def test_blank_lines_before_the_header_are_skipped(services, news, tmp_path):
    report = do_import(services, write(tmp_path, "\n,,\nemail,name\na@example.org,Ann\n"))
    assert not report.rejected and emails(services) == ["a@example.org"]
    with pytest.raises(ImportFileError, match="empty"):
        do_import(services, write(tmp_path, "\ufeff\n \n"))


def test_a_header_that_is_not_utf8_is_a_clear_error(services, news, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("email,prénom\na@example.org,Jose\n".encode("latin-1"))
    with pytest.raises(ImportFileError, match="not UTF-8"):
        do_import(services, path)


def test_oversize_field_mid_file_rejects_that_row_and_every_valid_row_lands(services, news,
                                                                            tmp_path):
    good = [f"u{i}@example.org,U{i}" for i in range(3010)]
    lines = ["email,name", *good[:3000], "big@example.org," + "x" * 200_000, *good[3000:]]
    report = do_import(services, write(tmp_path, "\n".join(lines) + "\n"))
    assert [(p.line, p.reason) for p in report.rejected] == [(3002, "row is longer than 64 KB")]
    with services.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Subscriber)) == 3010


def test_nul_in_a_name_rejects_that_row_on_every_engine(services, news, tmp_path):
    report = do_import(services, write(tmp_path, "email,name\na@example.org,A\x00B\n"
                                                 "b@example.org,Bea\n"))
    assert [(p.line, p.reason) for p in report.rejected] == [
        (2, "name contains a NUL character (U+0000)")]
    assert emails(services) == ["b@example.org"]


def test_duplicates_inside_one_batch_merge_to_the_last_row(services, news, tmp_path):
    text = ("email,name,language,organisation\n"
            "dup@example.org,First Name,fr,First Org\n"
            "other@example.org,Other,en,\n"
            "DUP@example.org,Last Name,es,Last Org\n")
    report = do_import(services, write(tmp_path, text))
    assert report.duplicates_in_file == 1 and report.merge.created == 2
    row = next(r for r in iter_subscribers(services.engine) if r.email == "dup@example.org")
    assert (row.name, row.language, row.attributes) == ("Last Name", "es",
                                                        {"organisation": "Last Org"})


def test_erasure_removes_personal_data_from_the_audit_trail(services, news):
    from sqlalchemy import insert

    add_subscriber(services.engine, email="p@example.org", list_slug="news",
                   address_key=key(services),
                   name="Private Person")
    with services.engine.begin() as conn:
        sid = conn.scalar(select(Subscriber.id))
        conn.execute(insert(Event).values(kind="subscribe", subscriber_id=sid, ip="192.0.2.7",
                                          user_agent="UA", data={"name": "Private Person"}))
    remove_subscriber(services.engine, email="p@example.org", address_key=key(services))
    with services.engine.connect() as conn:
        rows = conn.execute(select(Event.ip, Event.user_agent, Event.data)).all()
    assert rows and all(r.ip is None and r.user_agent is None for r in rows)
    assert "Private Person" not in repr(rows)


def test_a_row_the_database_refuses_is_rejected_alone(services, news, tmp_path):
    from sqlalchemy import text

    # A database rule the importer's checks do not know about stands in for the unforeseen.
    sqlite = services.engine.dialect.name == "sqlite"
    with services.engine.begin() as conn:
        if sqlite:
            conn.execute(text("CREATE TRIGGER no_refused BEFORE INSERT ON subscribers "
                              "WHEN NEW.name = 'Refused' BEGIN SELECT RAISE(ABORT, "
                              "'refused by a database rule'); END"))
        else:
            conn.execute(text("ALTER TABLE subscribers ADD CONSTRAINT no_refused "
                              "CHECK (name <> 'Refused')"))
    text_ = ("email,name,language\na@example.org,Ann,en\nr@example.org,Refused,en\n"
             "c@example.org,Cy,en\n")
    try:
        for strict in (True, False):
            report = do_import(services, write(tmp_path, text_), strict=strict)
            assert [(p.line, "refused" in p.reason) for p in report.rejected] == [(3, True)]
        assert emails(services) == ["a@example.org", "c@example.org"]
    finally:
        with services.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER no_refused" if sqlite
                              else "ALTER TABLE subscribers DROP CONSTRAINT no_refused"))


def _writes(services) -> dict[str, list]:
    """What an import can write: people, subscriptions, requests and audit events, with times."""
    with services.engine.connect() as conn:
        return {name: sorted(tuple(r) for r in conn.execute(select(*cols)))
                for name, cols in {
                    "subscribers": SUBSCRIBERS.c, "subscriptions": SUBSCRIPTIONS.c,
                    "requests": REQUESTS.c, "events": EVENTS.c}.items()}


def test_reimporting_an_unchanged_file_writes_nothing_and_still_rejects_its_bad_rows(
        services, news, tmp_path):
    path = write(tmp_path, MIXED)
    do_import(services, path)
    before = _writes(services)
    second = do_import(services, path)
    assert (second.accepted, second.merge.unchanged, second.merge.updated) == (3, 3, 0)
    assert _writes(services) == before  # no event, no request, every updated_at untouched
    reasons = {p.line: p.reason for p in second.rejected}
    assert set(reasons) == {3, 4, 6}
    assert "invalid email" in reasons[3] and "formula" in reasons[6]


def test_a_reimport_applies_changed_names_and_languages_and_rejects_bad_rows_by_line(
        services, news, tmp_path):
    first = "email;name;language\na@example.org;Ann;fr\nb@example.org;Bob;en\nc@example.org;Cy;es\n"
    do_import(services, write(tmp_path, first, name="first.csv"))
    stamps = _updated(services)
    changed = ("email;name;language\na@example.org;Ann;fr\nB@Example.org;Robert;en\n"
               "c@example.org;Cy;fr\na@example.org;Ann;de\na@@example.org;Ann;fr\n")
    report = do_import(services, write(tmp_path, changed))
    assert (report.merge.updated, report.merge.unchanged, report.merge.created) == (2, 1, 0)
    reasons = {p.line: p.reason for p in report.rejected}
    assert set(reasons) == {5, 6}
    assert "'de' is not offered" in reasons[5] and "invalid email" in reasons[6]
    people = {r.email: (r.name, r.language) for r in iter_subscribers(services.engine)}
    assert people == {"a@example.org": ("Ann", "fr"), "b@example.org": ("Robert", "en"),
                      "c@example.org": ("Cy", "fr")}
    after = _updated(services)
    assert after["a@example.org"] == stamps["a@example.org"]
    assert after["b@example.org"] > stamps["b@example.org"]
    assert after["c@example.org"] > stamps["c@example.org"]


def _updated(services) -> dict[str, object]:
    with services.engine.connect() as conn:
        return dict(tuple(r) for r in conn.execute(select(SUBSCRIBERS.c.email,
                                                          SUBSCRIBERS.c.updated_at)))
