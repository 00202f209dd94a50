"""A person who signed a statement but never subscribed can get their data (GDPR art. 15):
through the signature's own link on the web, and through `subscribers export-data` in the CLI."""

from __future__ import annotations

import json

from newsletter.db.models import Signature
from tests.conftest import Cli
from tests.statements.sample import write_statement
from tests.web.conftest import BASE_URL, WebEnv
from tests.web.test_sign import ANA, sign, verify_link


def test_a_signatory_who_never_subscribed_downloads_their_data(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    sign(web)
    sign(web, organisation="Someone Else", email="other@example.org", contact_name="Bo")
    link = verify_link(web, 0).removeprefix(BASE_URL)
    verified = web.client.post(link)
    assert "Descargar mis datos" in verified.text  # the page offers it, in Spanish
    assert web.subscriber("ana@example.org") is None  # never subscribed
    answer = web.client.post(link, data={"action": "data"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert "attachment" in answer.headers["content-disposition"]
    data = answer.json()
    assert data["subscriber"] is None and data["subscriptions"] == []
    assert [(s["statement"], s["organisation"], s["contact_name"], s["contact_email"],
             s["status"]) for s in data["signatures"]] == [
        ("new-deal", "Red Cruz Migrante", ANA["contact_name"], "ana@example.org", "verified")]
    assert "other@example.org" not in answer.text and "Someone Else" not in answer.text
    # The request to download changed nothing.
    assert [row["status"] for row in web.rows(Signature)] == ["verified",
                                                                    "pending_verification"]


def test_the_cli_exports_a_signatory_s_data_and_names_a_stranger(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    sign(web)
    run = Cli(web.settings.workspace)
    data = json.loads(run("subscribers", "export-data", "ANA@example.org").output)
    assert data["subscriber"] is None
    assert [s["organisation"] for s in data["signatures"]] == ["Red Cruz Migrante"]
    stranger = run("subscribers", "export-data", "nobody@example.org", ok=False)
    assert stranger.exit_code == 1
    assert "no subscriber or signatory nobody@example.org" in stranger.output


def test_a_forged_or_erased_link_downloads_nothing(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    sign(web)
    link = verify_link(web).removeprefix(BASE_URL)
    forged = web.client.post("/sign/verify/abc.def", data={"action": "data"})
    assert forged.status_code == 400 and "ana@" not in forged.text
    Cli(web.settings.workspace)("subscribers", "remove", "ana@example.org")
    erased = web.client.post(link, data={"action": "data"})
    assert erased.status_code == 400 and "Red Cruz" not in erased.text
