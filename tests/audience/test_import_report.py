"""What `subscribers import` reports: the JSON report's every field, the printed lines, the plan."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.audience.importer import ImportFileError, import_csv
from newsletter.audience.listedits import add_list
from newsletter.audience.subscribers import iter_subscribers
from newsletter.db.models import Event
from newsletter.errors import ValidationError
from tests.audience.conftest import write
from tests.conftest import Cli, akey

MIXED = (
    "email,name,language,org\n"
    "new1@example.org,New  One,fr,Org\n"
    "new2@example.org,New Two,fr,\n"
    "keep@example.org,Keep,en,\n"
    "upd@example.org,New Name,en,\n"
    "gone@example.org,Gone,en,\n"
    "sup@example.org,Sup,es,\n"
    "bad,Bad,en,\n"
    "NEW2@example.org,,,Later Org\n"
    "dup@example.org,Dup,fr,\n"
    "\n"
    "DUP@example.org,,es,\n"
    "xx@example.org,X,xx,\n"
)


@pytest.fixture
def news_list(services):  # type: ignore[no-untyped-def]
    return add_list(services.engine, slug="news", name="News", languages=["en", "fr", "es"],
                    default_language="en")


@pytest.fixture
def news(run: Cli) -> Cli:
    run("lists", "add", "news", "--name", "News", "--languages", "en,fr,es",
        "--default-language", "en")
    run("subscribers", "add", "keep@example.org", "--list", "news", "--name", "Keep")
    run("subscribers", "add", "upd@example.org", "--list", "news", "--name", "Old Name")
    run("subscribers", "add", "gone@example.org", "--list", "news", "--name", "Gone")
    run("subscribers", "remove", "gone@example.org", "--list", "news")
    run("subscribers", "add", "sup@example.org", "--list", "news")
    run("subscribers", "remove", "sup@example.org")  # erased: suppressed
    return run


def test_the_json_report_names_every_count_and_each_rejected_row(news: Cli,
                                                                 tmp_path: Path) -> None:
    path = str(write(tmp_path, MIXED))
    report = news.json("subscribers", "import", path, "--list", "news")
    assert report == {
        "rows": 11, "accepted": 6, "rejected": 3, "duplicates_in_file": 2,
        "created": 3, "updated": 1, "unchanged": 2, "subscribed": 3, "confirmed": 0,
        "kept_unsubscribed": 1, "dry_run": False, "strict": False, "committed": True,
        "errors": [
            {"line": 8, "email": "bad",
             "reason": "invalid email address 'bad': An email address must have an @-sign."},
            {"line": 13, "email": "xx@example.org",
             "reason": "language 'xx' is not offered by list 'news' (en, fr, es)"},
            {"line": 7, "email": "sup@example.org", "reason": "address is suppressed"},
        ],
        "warnings": [{"line": 2, "email": "new1@example.org",
                      "reason": "line breaks or extra spaces in the name were collapsed"}],
        "columns": {"email": "email", "name": "name", "language": "language",
                    "attributes": ["org"]},
        "languages": {"en": 3, "es": 1, "fr": 2},
        "notices": [],
        "invites": {"queued": 3, "throttled": 0},  # the 3 new pending subscribers are asked
    }


def test_the_printed_report_names_each_rejected_row_and_sums_up(news: Cli,
                                                                tmp_path: Path) -> None:
    path = write(tmp_path, MIXED)
    out = news("subscribers", "import", str(path), "--list", "news").output
    assert f"{path}:8: rejected bad: invalid email address 'bad'" in out
    assert (f"{path}:13: rejected xx@example.org: language 'xx' is not offered by list 'news' "
            "(en, fr, es)\n") in out
    assert f"{path}:7: rejected sup@example.org: address is suppressed\n" in out
    assert (f"{path}:2: warning new1@example.org: line breaks or extra spaces in the name "
            "were collapsed\n") in out
    assert "11 rows: 6 accepted, 3 rejected, 2 duplicates merged\n" in out
    assert ("subscribers: 3 were created, 1 updated, 2 unchanged; subscriptions: 3 new, "
            "0 confirmed, 1 stayed unsubscribed\n") in out
    assert "languages: en 5, fr 3, es 2 (+1 with a language the list lacks)\n" in out


def _import(services, path: Path, **kw):  # type: ignore[no-untyped-def]
    return import_csv(services.engine, path=path, list_slug="news",
                      address_key=akey(services), **kw)


def _people(services) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {r.email: (r.language, r.status) for r in iter_subscribers(services.engine)}


def test_rejected_addresses_are_shown_short_and_with_control_characters_escaped(
        services, news_list, tmp_path: Path) -> None:
    text = ("email,name\n" + "x" * 101 + ",Long\n" + "y" * 100 + ",Exact\n"
            "a\x1bb@example.org,Esc\nc\x85d@example.org,C1\nok@example.org,Ok\n")
    report = _import(services, write(tmp_path, text))
    assert [(p.line, p.email) for p in report.rejected] == [
        (2, "x" * 100 + "..."), (3, "y" * 100), (4, "a\\x1bb@example.org"),
        (5, "c\\x85d@example.org")]
    assert [p.reason for p in report.rejected[2:]] == [
        "email contains a control character (U+001B)",
        "email contains a control character (U+0085)"]
    assert list(_people(services)) == ["ok@example.org"]


def test_cells_are_checked_for_width_length_and_control_characters_by_column(
        services, news_list, tmp_path: Path) -> None:
    text = ("email,name,,notes\n"
            "a@example.org,Ann,x\x00y,\n"             # an unnamed column
            "b@example.org,Bea,,n\x7fo\n"
            "c@example.org,Cy,," + "n" * 1000 + "\n"  # 1,000 characters: kept
            "d@example.org,Di,," + "n" * 1001 + "\n"
            "e@example.org,Ed,,,,  \n"                # empty surplus cells: kept
            "f@example.org,Fa,,,,x\n"
            "g@example.org,Gi,,," + " " * 1001 + "\n")
    report = _import(services, write(tmp_path, text))
    assert [(p.line, p.reason) for p in report.rejected] == [
        (2, "column 3 contains a NUL character (U+0000)"),
        (3, "notes contains a control character (U+007F)"),
        (5, "notes is longer than 1000 characters"),
        (7, "6 cells but the header has 4 columns (quote any cell that contains the delimiter)"),
        (8, "column 5 is longer than 1000 characters"),
    ]
    assert sorted(_people(services)) == ["c@example.org", "e@example.org"]


def test_a_cell_problem_in_a_split_name_or_the_language_names_that_field(
        services, news_list, tmp_path: Path) -> None:
    text = ("Courriel;Prénom;Nom;Langue\n"
            "a@example.org;Amina;Dia\x01llo;fr\n"
            "b@example.org;Bea;Bo;f\x02r\n"
            "c@example.org;C\x03y;Ca;fr\n")
    report = _import(services, write(tmp_path, text))
    assert [(p.line, p.reason) for p in report.rejected] == [
        (2, "name contains a control character (U+0001)"),
        (3, "language contains a control character (U+0002)"),
        (4, "name contains a control character (U+0003)")]


def test_a_file_without_a_language_column_gets_a_notice_in_the_json_report(
        services, news_list, tmp_path: Path) -> None:
    report = _import(services, write(tmp_path, "email\na@example.org\nb@example.org\n"))
    assert report.as_dict()["notices"] == [
        "no language column found: all 2 rows get the list's default language 'en' (the list "
        "offers en, fr, es); name the column with --column language=HEADER, or use --strict "
        "to refuse such a file"]


def test_languages_are_read_as_codes_variants_or_names(services, news_list,
                                                        tmp_path: Path) -> None:
    text = ("email,language\na@example.org,FR\nb@example.org,es_MX\nc@example.org,fr-ca\n"
            "d@example.org,Español\ne@example.org,\nf@example.org\ng@example.org,xx-yy\n")
    report = _import(services, write(tmp_path, text))
    assert {e: lang for e, (lang, _) in _people(services).items()} == {
        "a@example.org": "fr", "b@example.org": "es", "c@example.org": "fr",
        "d@example.org": "es", "e@example.org": "en", "f@example.org": "en"}
    assert [(p.line, p.reason) for p in report.rejected] == [
        (8, "language 'xx-yy' is not offered by list 'news' (en, fr, es)")]
    assert report.languages == {"en": 2, "es": 2, "fr": 2}


def test_with_fallback_a_language_the_list_lacks_becomes_the_default_with_a_warning(
        services, news_list, tmp_path: Path) -> None:
    report = _import(services, write(tmp_path, "email,language\na@example.org,de\n"),
                     fallback_language=True)
    assert not report.rejected
    assert [(p.line, p.email, p.reason) for p in report.warnings] == [
        (2, "a@example.org",
         "language 'de' is not offered by list 'news' (en, fr, es); using 'en'")]
    assert _people(services)["a@example.org"][0] == "en"


def test_the_plan_counts_rows_per_language_before_anything_is_written(
        services, news_list, tmp_path: Path) -> None:
    path = tmp_path / "subs.csv"
    path.write_bytes(b"email,language\n\na@example.org,es\nb@example.org,fr\nc@example.org,xx\n"
                     b"d@example.org,Jos\xe9\ne@example.org,fr\nf@example.org\ng@example.org,es\n"
                     b"h@example.org,ES\n")
    plans = []

    def on_plan(plan) -> None:  # type: ignore[no-untyped-def]
        plans.append((plan.rows, plan.languages, plan.unknown_language, _people(services)))

    _import(services, path, on_plan=on_plan)
    # Rows: blank lines are not rows, an unreadable one is; most rows first, then by code.
    assert plans == [(8, {"es": 3, "fr": 2, "en": 1}, 1, {})]
    assert list(plans[0][1]) == ["es", "fr", "en"]


def test_progress_is_reported_every_thousand_rows(services, news_list, tmp_path: Path) -> None:
    lines = ["email"] + [f"u{i}@example.org" for i in range(2001)] + ["", ""]
    calls: list[int] = []
    report = _import(services, write(tmp_path, "\n".join(lines) + "\n"), progress=calls.append)
    assert calls == [1000, 1000] and report.rows == 2001


def test_the_consent_source_is_recorded_or_the_file_name_stands_in(
        services, news_list, tmp_path: Path) -> None:
    path = write(tmp_path, "email\na@example.org\n", name="spring.csv")
    _import(services, path)
    other = write(tmp_path, "email\nb@example.org\n", name="autumn.csv")
    _import(services, other, confirmed=True, consent_source="paper form, 2026 assembly")
    with services.engine.connect() as conn:
        sources = set(conn.scalars(select(Event.source).where(Event.kind.like("import%"))))
    assert sources == {"import:spring.csv", "paper form, 2026 assembly"}
    assert _people(services) == {"a@example.org": ("en", "pending"),
                                 "b@example.org": ("en", "confirmed")}


def test_import_mistakes_are_one_clear_error(services, news_list, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as consent:
        _import(services, write(tmp_path, "email\na@example.org\n"), confirmed=True,
                consent_source="  ")
    assert str(consent.value) == (
        "--confirmed needs --consent-source saying where consent came from")
    with pytest.raises(ImportFileError) as missing:
        _import(services, tmp_path / "nope.csv")
    assert str(missing.value) == f"{tmp_path / 'nope.csv'}: no such file"
    with pytest.raises(ImportFileError) as empty:
        _import(services, write(tmp_path, "\n\n"))
    assert str(empty.value) == "the file is empty"
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"email,pr\xe9nom\na@example.org,Jose\n")
    with pytest.raises(ImportFileError) as header:
        _import(services, path)
    assert str(header.value).startswith("line 1: the header cannot be read: ")
    assert "not UTF-8" in str(header.value)
    with pytest.raises(ImportFileError) as strict:
        _import(services, write(tmp_path, "email\na@example.org\nb@example.org\n"), strict=True)
    assert str(strict.value) == (
        "--strict: no language column, so all 2 rows would get the default language 'en'; "
        "name the column with --column language=HEADER")
    assert _people(services) == {}


def test_the_report_says_whether_anything_was_written(services, news_list,
                                                      tmp_path: Path) -> None:
    good = write(tmp_path, "email,language\na@example.org,en\n")
    bad = write(tmp_path, "email,language\nb@example.org,en\nbad,en\n", name="bad.csv")
    flags = [(r.dry_run, r.strict, r.committed) for r in (
        _import(services, good, dry_run=True), _import(services, bad, strict=True),
        _import(services, good, strict=True), _import(services, bad))]
    assert flags == [(True, False, False), (False, True, False), (False, True, True),
                     (False, False, True)]
    assert sorted(_people(services)) == ["a@example.org", "b@example.org"]


def test_a_row_the_database_refuses_is_named_with_the_first_line_of_its_reason(
        services, news_list, tmp_path: Path) -> None:
    from sqlalchemy import text

    long_reason = "refused by a database rule " + "x" * 300
    sqlite = services.engine.dialect.name == "sqlite"
    with services.engine.begin() as conn:
        if sqlite:
            conn.execute(text("CREATE TRIGGER no_refused BEFORE INSERT ON subscribers "
                              f"WHEN NEW.name = 'Refused' BEGIN SELECT RAISE(ABORT, "
                              f"'{long_reason}'); END"))
        else:
            conn.execute(text("ALTER TABLE subscribers ADD CONSTRAINT no_refused "
                              "CHECK (name <> 'Refused')"))
    rows = ("email,name,language\na@example.org,Ann,fr\nr@example.org,Refused,es\n"
            "c@example.org,Cy,fr\n")
    try:
        report = _import(services, write(tmp_path, rows), confirmed=True,
                         consent_source="paper form")
    finally:
        with services.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER no_refused" if sqlite
                              else "ALTER TABLE subscribers DROP CONSTRAINT no_refused"))
    reason = (long_reason[:200] if sqlite else
              'new row for relation "subscribers" violates check constraint "no_refused"')
    assert [(p.line, p.email, p.reason) for p in report.rejected] == [
        (3, "r@example.org", f"the database refused this row: {reason}")]
    assert (report.accepted, report.languages) == (2, {"fr": 2})
    if not sqlite:  # SQLite has no savepoint here: the refused batch's first row stays written
        assert (report.merge.created, report.merge.unchanged) == (2, 0)
    assert _people(services) == {"a@example.org": ("fr", "confirmed"),
                                 "c@example.org": ("fr", "confirmed")}
    with services.engine.connect() as conn:
        sources = conn.execute(select(Event.kind, Event.source)
                               .where(Event.kind.like("import%"))).all()
    assert [tuple(r) for r in sources] == [("import-confirmed", "paper form")] * 2


def test_a_later_duplicate_row_with_a_language_changes_an_existing_subscribers_language(
        services, news_list, tmp_path: Path) -> None:
    _import(services, write(tmp_path, "email,language\na@example.org,en\n", name="first.csv"))
    text = "email,name,language\na@example.org,Ann,\nA@example.org,,fr\n"
    report = _import(services, write(tmp_path, text))
    assert report.duplicates_in_file == 1 and report.languages == {"fr": 1}
    [row] = list(iter_subscribers(services.engine))
    assert (row.name, row.language) == ("Ann", "fr")


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_the_plan_of_a_file_of_many_blocks_counts_each_row_once(
        services, news_list, tmp_path: Path, ending: bytes) -> None:
    # Over 64 KB of plain lines, with quoted, unreadable, short and blank ones among them.
    cells = ["en", " fr ", "ES", "xx", "", "   "]
    lines, expected = [b"\n", b"email,name,language,org"], {"en": 0, "fr": 0, "es": 0}
    unknown = unreadable = 0
    for i in range(6000):
        if i % 97 == 0:
            lines.append(f'q{i}@example.org,"Name, Quoted",fr,x'.encode())
            expected["fr"] += 1
        elif i % 89 == 0:
            lines.append(f"u{i}@example.org,Jos\xe9,es,x".encode("latin-1"))
            unreadable += 1
        elif i % 50 == 0:
            lines.append([b"", b",,,", b" ,\t, ,"][i % 3])
        elif i % 43 == 0:
            lines.append(f"s{i}@example.org".encode())
            expected["en"] += 1
        else:
            cell = cells[i % len(cells)]
            lines.append(f"p{i}@example.org,Name,{cell},Org".encode())
            language = cell.strip().lower() or "en"
            if language == "xx":
                unknown += 1
            else:
                expected[language] += 1
    path = tmp_path / "subs.csv"
    path.write_bytes(ending.join(lines))  # no line ending after the last row
    plans = []
    report = _import(services, path, dry_run=True, on_plan=plans.append)
    assert report.rows == sum(expected.values()) + unknown + unreadable
    assert [(p.rows, p.languages, p.unknown_language) for p in plans] == [
        (report.rows, dict(sorted(expected.items(), key=lambda kv: -kv[1])), unknown)]
