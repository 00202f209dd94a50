"""`{{ statement("slug") }}` in an issue: per language, the count of organisations whose
signatures are approved (read when the issue is compiled) and a button to the statement's form
in that language; `issue check` names an unknown statement or one without the language."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import lxml.html
from sqlalchemy import insert

from newsletter.compose import compile_issue, load_issue
from newsletter.db.models import utcnow
from newsletter.db.tables import SIGNATURES, STATEMENTS
from newsletter.services import Services
from newsletter.statements.signatures import fold
from tests.conftest import Cli
from tests.statements.sample import write_statement

BODIES = {"en": "Dear friends,\n\nOur statement is open.\n\n{{ statement(\"new-deal\") }}\n",
          "fr": "Chers amis,\n\nNotre déclaration est ouverte.\n\n{{ statement('new-deal') }}\n"}


def write_issue(workspace: Path, bodies: dict[str, str], slug: str = "with-statement") -> None:
    folder = workspace / "issues" / slug
    folder.mkdir(parents=True)
    (folder / "issue.toml").write_text('list = "news"\ndate = 2026-11-20\n', encoding="utf-8")
    for lang, body in bodies.items():
        (folder / f"{lang}.md").write_text(
            f'+++\ntitle = "Update"\nsubject = "Our joint statement is open for sign-on"\n'
            f'preheader = "A statement to sign, and the dates to keep in December."\n+++\n'
            f"{body}", encoding="utf-8")


def button(html_text: str, label: str) -> str:
    """The href of the email's link that reads `label`."""
    doc = lxml.html.fromstring(html_text)
    [href] = [a.get("href") for a in doc.iter("a") if a.text_content().strip() == label]
    return str(href)


def approve(services: Services, *organisations: str, status: str = "approved") -> None:
    with services.engine.begin() as conn:
        sid = conn.execute(insert(STATEMENTS).values(slug="new-deal", created_at=utcnow())
                           ).inserted_primary_key[0]  # type: ignore[index]
        for n, name in enumerate(organisations):
            conn.execute(insert(SIGNATURES).values(
                statement_id=sid, organisation=name, organisation_key=fold(name), country="FR",
                organisation_type="ngo", contact_name="X", contact_email=f"x{n}@example.org",
                language="fr", listed=True, status=status, created_at=utcnow()))


def test_the_button_and_the_live_count_in_the_french_and_english_emails(
        workspace: Path, services: Services) -> None:
    write_statement(workspace)
    write_issue(workspace, BODIES)
    approve(services, "Cimade", "Red Cruz Migrante")
    source = load_issue(workspace, "with-statement")
    french = compile_issue(source, "fr", services.settings)
    english = compile_issue(source, "en", services.settings)
    assert "<strong>Organisations signataires\u202f: 2</strong>" in french.html_shell
    assert button(french.html_shell, "Signer la déclaration") == (
        "https://news.example.org/sign/new-deal?lang=fr")
    assert "» Signer la déclaration : https://news.example.org/sign/new-deal?lang=fr" in \
        french.text_shell.replace("\u202f", " ").replace("\u00a0", " ")
    assert "<strong>Organisations that have signed: 2</strong>" in english.html_shell
    assert button(english.html_shell, "Sign the statement") == (
        "https://news.example.org/sign/new-deal?lang=en")
    assert "Sign the statement" in english.text_shell
    assert "statement(" not in english.html_shell + english.text_shell

    # One more approved: the next compile counts it, and the text is not "changed" for it.
    approve_more(services, "Amnesty")
    again = compile_issue(source, "en", services.settings)
    assert "<strong>Organisations that have signed: 3</strong>" in again.html_shell
    assert again.content_hash == english.content_hash


def approve_more(services: Services, name: str) -> None:
    with services.engine.begin() as conn:
        conn.execute(insert(SIGNATURES).values(
            statement_id=1, organisation=name, organisation_key=fold(name), country="GB",
            organisation_type="ngo", contact_name="Y", contact_email="y@example.org",
            language="en", listed=False, status="approved", created_at=utcnow()))


def test_only_approved_signatures_count(workspace: Path, services: Services) -> None:
    write_statement(workspace)
    write_issue(workspace, BODIES)
    approve(services, "Waiting Org", status="verified")
    edition = compile_issue(load_issue(workspace, "with-statement"), "en", services.settings)
    assert "<strong>Organisations that have signed: 0</strong>" in edition.html_shell


def test_issue_check_names_an_unknown_statement(workspace: Path, run: Cli) -> None:
    write_statement(workspace)
    write_issue(workspace, {"en": "Sign it.\n\n{{ statement(\"old-deal\") }}\n"})
    result = run("issue", "check", "with-statement", ok=False)
    assert result.exit_code == 1
    assert "issues/with-statement/en.md:8: error statement" in result.output
    assert "no statement 'old-deal'" in result.output
    assert "Traceback" not in result.output


def test_issue_check_names_a_statement_without_the_language(workspace: Path, run: Cli) -> None:
    write_statement(workspace, languages=("en", "es"))
    write_issue(workspace, BODIES)
    result = run("issue", "check", "with-statement", ok=False)
    assert result.exit_code == 1
    assert "statement 'new-deal' has no fr text (statements/new-deal/fr.md)" in result.output


def test_a_statement_inside_a_sentence_is_refused(workspace: Path, run: Cli) -> None:
    write_statement(workspace)
    write_issue(workspace, {"en": "Please {{ statement(\"new-deal\") }} today.\n"})
    result = run("issue", "check", "with-statement", ok=False)
    assert 'put {{ statement("new-deal") }} on a line of its own' in result.output


def test_a_closed_statement_shows_its_count_and_says_it_is_closed(
        workspace: Path, services: Services) -> None:
    today = dt.datetime.now(dt.UTC).date()
    write_statement(workspace, opens=today - dt.timedelta(days=9),
                    closes=today - dt.timedelta(days=1))
    write_issue(workspace, BODIES)
    approve(services, "Cimade")
    edition = compile_issue(load_issue(workspace, "with-statement"), "fr", services.settings)
    assert "<strong>Organisations signataires\u202f: 1</strong>" in edition.html_shell
    assert "Cette déclaration est close." in edition.html_shell
    assert "/sign/new-deal" not in edition.html_shell + edition.text_shell
