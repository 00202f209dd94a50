"""The archive's statement pages: approved and listed organisations, grouped by country, on
every language's page; never a contact, nor a rejected, unverified or unlisted signature."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from newsletter.db.models import Signature
from tests.conftest import Cli
from tests.statements.sample import write_statement
from tests.web.conftest import BASE_URL, WebEnv
from tests.web.test_sign import ANA, sign, verify_link


def _sign_and_verify(web: WebEnv, **changes: str) -> None:
    sign(web, **changes)
    web.client.post(verify_link(web).removeprefix(BASE_URL))


def _site(web: WebEnv) -> str:
    """Every page of the built site, one text."""
    Cli(web.settings.workspace)("archive", "build")
    site = Path(web.settings.workspace) / "site"
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(site.rglob("*.html")))


def test_approved_signatories_appear_by_country_and_contacts_nowhere(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    _sign_and_verify(web)  # Red Cruz Migrante, Mexico
    _sign_and_verify(web, organisation="Quiet Org", email="q@example.org", listed="no")
    _sign_and_verify(web, organisation="Refused Org", email="r@example.org", country="FR")
    sign(web, organisation="Unverified Org", email="u@example.org")
    _sign_and_verify(web, organisation="RED CRUZ  migrante", email="otro@example.org")
    run = Cli(web.settings.workspace)
    refused = [r["id"] for r in web.rows(Signature) if r["organisation"] == "Refused Org"]
    run("statement", "review", "new-deal", "--reject", str(refused[0]))
    run("statement", "review", "new-deal", "--approve-all")
    run("archive", "build")
    site = Path(web.settings.workspace) / "site"
    spanish = (site / "es/statements/new-deal/index.html").read_text(encoding="utf-8")
    english = (site / "en/statements/new-deal/index.html").read_text(encoding="utf-8")
    assert "<h3>México</h3>" in spanish and "<h3>Mexico</h3>" in english
    for page in (spanish, english):
        assert "Red Cruz Migrante" in page
        assert "Quiet Org" not in page  # approved, but not to be listed
        assert "Refused Org" not in page and "Unverified Org" not in page
    assert "RED CRUZ" not in spanish  # the same organisation, signed by a second contact
    assert "Organizaciones firmantes: 2" in spanish  # the listed and the unlisted one
    assert 'href="../../../fr/statements/new-deal/"' in spanish
    everything = _site(web)
    for secret in (ANA["contact_name"], "@example.org"):
        assert secret not in everything


def test_a_closed_statement_says_so_and_offers_no_form(web: WebEnv) -> None:
    today = dt.datetime.now(dt.UTC).date()
    write_statement(web.settings.workspace, opens=today - dt.timedelta(days=9),
                    closes=today - dt.timedelta(days=1))
    page = _site(web)
    assert "Esta declaración está cerrada." in page and "/sign/new-deal" not in page


def test_statements_have_an_index_per_language_and_are_in_the_sitemap(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    _sign_and_verify(web)
    run = Cli(web.settings.workspace)
    first = run.json("archive", "build")
    site = Path(web.settings.workspace) / "site"
    index = (site / "fr/statements/index.html").read_text(encoding="utf-8")
    assert "<h1>Déclarations</h1>" in index
    assert '<a href="new-deal/">Un New Deal pour les réfugiés' in index
    assert "Organisations signataires\u202f: 0" in index
    page = (site / "fr/statements/new-deal/index.html").read_text(encoding="utf-8")
    assert '<a href="../">Déclarations</a>' in page  # the way back to the index
    sitemap = (site / "sitemap.xml").read_text(encoding="utf-8")
    for lang in ("en", "fr", "es"):
        assert f"<loc>{BASE_URL}/archive/{lang}/statements/</loc>" in sitemap
        assert f"<loc>{BASE_URL}/archive/{lang}/statements/new-deal/</loc>" in sitemap
    assert (f'hreflang="es" href="{BASE_URL}/archive/es/statements/new-deal/"/>'
            in sitemap)

    # Nothing new: nothing written. One approval: its pages and the indexes, not the rest.
    assert run.json("archive", "build")["written"] == 0
    run("statement", "review", "new-deal", "--approve-all")
    changed = run.json("archive", "build")["changed"]
    assert "es/statements/new-deal/index.html" in changed
    assert "fr/statements/index.html" in changed
    assert first["written"] > len(changed)
    assert "Organisations signataires\u202f: 1" in (
        site / "fr/statements/index.html").read_text(encoding="utf-8")
