"""Signing a statement through /sign/<slug>: in the signer's language, confirmed through the
mailed link, reviewed in the CLI, exported; closed, duplicate, rejected and unverified
signatures, and bad posts."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest

from newsletter.db.models import Signature
from tests.conftest import Cli
from tests.statements.sample import write_statement
from tests.web.conftest import BASE_URL, WebEnv, link_in

ANA = {"organisation": "Red Cruz Migrante", "country": "MX", "organisation_type": "ngo",
       "contact_name": "Ana Pérez", "email": "ana@example.org", "listed": "yes",
       "language": "es"}


def sign(web: WebEnv, slug: str = "new-deal", **changes: str) -> Any:
    return web.client.post(f"/sign/{slug}?lang=es", data={**ANA, **changes})


def verify_link(web: WebEnv, index: int = -1) -> str:
    web.deliver()
    return link_in(web.smtp.messages[index], BASE_URL + "/sign/verify/")


def test_sign_in_spanish_confirm_approve_and_export(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    form = web.client.get("/sign/new-deal?lang=es")
    assert form.status_code == 200
    assert "Un Nuevo Pacto" in form.text and "<strong" in form.text
    assert "México" in form.text  # the country list, named in Spanish (Babel)
    answer = sign(web)
    assert answer.status_code == 200 and "Revise su bandeja" in answer.text
    mail = (web.deliver(), web.smtp.messages[-1])[1]
    assert mail["To"].addresses[0].addr_spec == "ana@example.org"
    assert "Red Cruz Migrante" in str(mail["Subject"])
    link = link_in(mail, BASE_URL + "/sign/verify/").removeprefix(BASE_URL)
    assert web.client.get(link).status_code == 200
    assert web.rows(Signature)[0]["status"] == "pending_verification"  # a GET changes nothing
    done = web.client.post(link)
    assert done.status_code == 200 and "Firma confirmada" in done.text
    run = Cli(web.settings.workspace)
    waiting = run.json("statement", "review", "new-deal")
    assert [row["organisation"] for row in waiting] == ["Red Cruz Migrante"]
    table = run("statement", "review", "new-deal").output
    assert "Red Cruz Migrante\tMX\tngo\tAna Pérez\tana@example.org\tyes" in table
    assert run.json("statement", "review", "new-deal", "--approve-all") == {
        "approved": [waiting[0]["id"]], "rejected": []}
    rows = list(csv.DictReader(io.StringIO(run("statement", "export", "new-deal").output)))
    assert [(r["organisation"], r["contact_email"], r["status"]) for r in rows] == [
        ("Red Cruz Migrante", "ana@example.org", "approved")]


def test_unverified_and_rejected_signatures_cannot_be_approved(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    sign(web)
    sign(web, organisation="Otra", email="otra@example.org")
    first, second = (row["id"] for row in web.rows(Signature))
    run = Cli(web.settings.workspace)
    refused = run("statement", "review", "new-deal", "--approve", str(first), ok=False)
    assert refused.exit_code == 1
    assert "is pending_verification: it cannot be approved" in refused.output
    assert run.json("statement", "review", "new-deal", "--approve-all") == {
        "approved": [], "rejected": []}  # nothing verified yet
    assert run.json("statement", "review", "new-deal", "--reject", str(second)) == {
        "approved": [], "rejected": [second]}
    link = verify_link(web, 1).removeprefix(BASE_URL)  # the rejected one's link
    web.client.post(link)
    assert [row["status"] for row in web.rows(Signature)] == ["pending_verification", "rejected"]
    assert run.json("statement", "review", "new-deal") == []
    assert run("statement", "review", "new-deal").output == (
        "no signature of 'new-deal' waits for review\n")


def test_a_duplicate_signature_gets_the_same_answer_and_adds_nothing(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    sign(web)
    web.client.post(verify_link(web).removeprefix(BASE_URL))
    again = sign(web, organisation="  red cruz MIGRANTE ")  # case and spaces differ
    assert again.status_code == 200 and "Revise su bandeja" in again.text
    assert len(web.rows(Signature)) == 1
    assert len(web.outbox("verify-signature")) == 1  # no second mail for a verified one


def test_a_closed_statement_refuses_signatures_with_a_clear_page(web: WebEnv) -> None:
    today = dt.datetime.now(dt.UTC).date()
    write_statement(web.settings.workspace, opens=today - dt.timedelta(days=30),
                    closes=today - dt.timedelta(days=1))
    page = web.client.get("/sign/new-deal?lang=es")
    assert page.status_code == 410 and "cerrada" in page.text
    refused = sign(web)
    assert refused.status_code == 410 and "cerrada" in refused.text
    assert web.rows(Signature) == [] and web.outbox() == []


def test_an_unknown_statement_is_a_404_page(web: WebEnv) -> None:
    assert web.client.get("/sign/nothing-here").status_code == 404
    assert web.client.post("/sign/nothing-here", data=ANA).status_code == 404


@pytest.mark.parametrize("changes", [
    {"email": "not an address"}, {"country": "XX"}, {"organisation_type": "army"},
    {"organisation": "  "}, {"contact_name": ""}, {"organisation": "x" * 300},
    {"contact_name": "x" * 300},
])
def test_bad_posts_get_the_form_again_with_a_400(web: WebEnv, changes: dict[str, str]) -> None:
    write_statement(web.settings.workspace)
    answer = sign(web, **changes)
    assert answer.status_code == 400
    assert 'role="alert"' in answer.text and "Traceback" not in answer.text
    assert web.rows(Signature) == []


def test_a_forged_link_and_a_bot_get_pages_not_tracebacks(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    assert web.client.get("/sign/verify/abc.def").status_code == 400
    assert web.client.post("/sign/verify/abc.def").status_code == 400
    assert web.client.post("/sign/new-deal", content=b"\xff",
                           headers={"content-type": "text/x-odd"}).status_code == 415
    bot = sign(web, website="http://spam.example")
    assert bot.status_code == 200 and web.rows(Signature) == []


def test_the_newsletter_opt_in_goes_through_the_double_opt_in(web: WebEnv) -> None:
    web.add_list()
    write_statement(web.settings.workspace, extra='list = "news"\n')
    assert 'name="newsletter"' in web.client.get("/sign/new-deal").text
    sign(web, newsletter="yes")
    assert len(web.outbox("confirm")) == 1 and len(web.outbox("verify-signature")) == 1
    subscriber = web.subscriber("ana@example.org")
    assert web.subscription(subscriber["id"], 1)["status"] == "pending"


def test_one_network_is_limited_and_one_address_gets_few_mails(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    for n in range(4):  # at most 3 verification mails an address a day, same answer after
        answer = sign(web, organisation=f"Org {n}")
        assert answer.status_code == 200 and "Revise su bandeja" in answer.text
    assert len(web.rows(Signature)) == 4 and len(web.outbox("verify-signature")) == 3
    strict = web.other_app({"web": {"max_subscribes_per_ip": 4}})
    limited = strict.post("/sign/new-deal?lang=es", data={**ANA, "organisation": "Org 5"})
    assert limited.status_code == 429 and len(web.rows(Signature)) == 4


def test_a_full_statement_takes_no_more_signatures(web: WebEnv) -> None:
    write_statement(web.settings.workspace, extra="cap = 1\n")
    sign(web)
    web.client.post(verify_link(web).removeprefix(BASE_URL))
    Cli(web.settings.workspace)("statement", "review", "new-deal", "--approve-all")
    refused = sign(web, organisation="Late Org", email="late@example.org")
    assert refused.status_code == 410 and len(web.rows(Signature)) == 1


def test_erasing_the_contact_keeps_the_organisation_signature(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    sign(web)
    web.client.post(verify_link(web).removeprefix(BASE_URL))
    run = Cli(web.settings.workspace)
    run("statement", "review", "new-deal", "--approve-all")
    run("subscribers", "remove", "ana@example.org")
    rows = list(csv.DictReader(io.StringIO(run("statement", "export", "new-deal").output)))
    assert [(r["organisation"], r["status"], r["contact_name"]) for r in rows] == [
        ("Red Cruz Migrante", "approved", "")]
    assert "ana" not in rows[0]["contact_email"]


def test_a_verification_link_mailed_before_a_key_rotation_still_works(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    assert sign(web).status_code == 200
    link = verify_link(web).removeprefix(BASE_URL)
    old = str(web.settings.secret_key)
    retired = web.other_app({"newsletter": {"secret_key": "a-brand-new-key-0000000000"}})
    assert retired.post(link).status_code == 400  # the old key dropped: the link is refused
    assert web.rows(Signature)[0]["status"] == "pending_verification"
    rotated = web.other_app({"newsletter": {"secret_key": "a-brand-new-key-0000000000",
                                            "old_secret_keys": [old]}})
    assert rotated.post(link).status_code == 200
    assert web.rows(Signature)[0]["status"] == "verified"


def test_an_encoded_word_in_a_name_adds_no_header_to_the_mail(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    hostile = "=?utf-8?q?Ana=0D=0ABcc:_all@example.org?="
    assert sign(web, contact_name=hostile, organisation=hostile).status_code == 200
    web.deliver()
    [mail] = web.smtp.messages
    assert mail["Bcc"] is None and mail["To"].addresses[0].addr_spec == "ana@example.org"


def test_control_characters_in_names_are_cleaned_like_every_name(web: WebEnv) -> None:
    write_statement(web.settings.workspace)
    assert (
        sign(web, organisation="Red\x00Cruz\u202e", contact_name="Ana\r\nBcc: x").status_code == 200
    )
    [row] = web.rows(Signature)
    assert (row["organisation"], row["contact_name"]) == ("RedCruz", "Ana Bcc: x")


def test_a_name_too_long_is_blamed_on_its_own_field() -> None:
    from newsletter.errors import ValidationError
    from newsletter.statements.signatures import SignRequest, checked

    for field in ("organisation", "contact_name"):
        values = {"organisation": "Red", "country": "MX", "organisation_type": "ngo",
                  "contact_name": "Ana", "contact_email": "ana@example.org", "language": "es",
                  "listed": True, "newsletter": False, field: "x" * 201}
        with pytest.raises(ValidationError) as refused:
            checked(SignRequest(**values))  # type: ignore[arg-type]
        assert refused.value.field == field  # type: ignore[attr-defined]
