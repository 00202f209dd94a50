"""`newsletter statement review SLUG` without a bulk flag: one signature at a time on a
terminal (approve, reject, skip, quit), the merge of organisations named alike, and the list
with a hint when the output is piped."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from newsletter.db.models import Signature
from tests.conftest import Cli
from tests.statements.sample import write_statement
from tests.web.conftest import BASE_URL, WebEnv
from tests.web.test_sign import sign, verify_link


def _signed(web: WebEnv, organisation: str, email: str, **changes: str) -> int:
    """A verified signature; its id."""
    sign(web, organisation=organisation, email=email, **changes)
    web.client.post(verify_link(web).removeprefix(BASE_URL))
    return max(row["id"] for row in web.rows(Signature))


def _statuses(web: WebEnv) -> dict[str, str]:
    return {row["contact_email"]: row["status"] for row in web.rows(Signature)}


def _listed(web: WebEnv, lang: str = "en") -> str:
    Cli(web.settings.workspace)("archive", "build")
    page = Path(web.settings.workspace) / "site" / lang / "statements" / "new-deal" / "index.html"
    return page.read_text(encoding="utf-8")


def test_the_walk_approves_rejects_skips_and_quits(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    for n in range(4):
        _signed(web, f"Org {n}", f"o{n}@example.org")
    result = Cli(web.settings.workspace)("statement", "review", "new-deal", "--interactive",
                                         input="a\nr\nx\ns\nq\n")
    assert "[1/4] signature" in result.output and "Org 0 (MX, ngo), listed: yes" in result.output
    assert "contact: Ana Pérez <o0@example.org>" in result.output
    assert "Error: 'x' is not one of" in result.output  # asked again, nothing decided
    assert result.output.rstrip().endswith("approved 1, rejected 1, merged 0, skipped 1")
    assert _statuses(web) == {"o0@example.org": "approved", "o1@example.org": "rejected",
                              "o2@example.org": "verified", "o3@example.org": "verified"}
    assert "Org 0" in _listed(web) and "Org 1" not in _listed(web)


def test_a_name_that_differs_in_case_accents_or_spaces_is_merged_on_request(
        web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    _signed(web, "Red Cruz Migrante", "first@example.org")
    run = Cli(web.settings.workspace)
    run("statement", "review", "new-deal", "--approve-all")
    _signed(web, "RED CRUZ migránte", "second@example.org")
    _signed(web, "red cruz MIGRANTE", "third@example.org", country="ES")
    # The first one alike is merged (the default answer); the second is kept apart.
    result = run("statement", "review", "new-deal", "--interactive", input="a\n\na\nn\n")
    assert ("'RED CRUZ migránte' looks like 'Red Cruz Migrante', already approved"
            in result.output)
    assert result.output.rstrip().endswith("approved 2, rejected 0, merged 1, skipped 0")
    rows = list(csv.DictReader(io.StringIO(run("statement", "export", "new-deal").output)))
    assert [(r["contact_email"], r["organisation"], r["status"]) for r in rows] == [
        ("first@example.org", "Red Cruz Migrante", "approved"),
        ("second@example.org", "Red Cruz Migrante", "approved"),
        ("third@example.org", "red cruz MIGRANTE", "approved")]
    page = _listed(web)
    assert page.count("Red Cruz Migrante") == 1  # one organisation, once
    assert "red cruz MIGRANTE" in page  # the editors said: another organisation
    assert "Organisations that have signed: 2" in page


def test_without_a_terminal_it_lists_and_points_to_the_bulk_flags(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    _signed(web, "Org A", "a@example.org")
    result = Cli(web.settings.workspace)("statement", "review", "new-deal", input="a\n")
    assert "Org A\tMX\tngo" in result.stdout
    assert "Decide with --approve-all, --approve ID or --reject ID" in result.stderr
    assert "Decide" not in result.stdout  # the table alone, for the next command in the pipe
    assert _statuses(web) == {"a@example.org": "verified"}  # the piped "a" decided nothing


def test_on_a_terminal_the_walk_is_the_default(web: WebEnv,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import newsletter.cli.statement as module

    write_statement(web.settings.workspace)
    _signed(web, "Org A", "a@example.org")

    class Terminal:
        @staticmethod
        def isatty() -> bool:
            return True

    monkeypatch.setattr(module, "sys", type("Sys", (), {"stdin": Terminal, "stdout": Terminal}))
    result = Cli(web.settings.workspace)("statement", "review", "new-deal", input="a\n")
    assert result.output.rstrip().endswith("approved 1, rejected 0, merged 0, skipped 0")
    assert _statuses(web) == {"a@example.org": "approved"}
