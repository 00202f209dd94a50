"""Signing the example statement in headless Chromium against a real uvicorn server, in
Spanish: the form, the verification link from the mail aiosmtpd captured, the editors'
approval in the CLI, and the rebuilt archive, which names the organisation and never its
contact."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

import newsletter
from tests.conftest import Cli, chromium_browser
from tests.web.conftest import WebEnv, link_in
from tests.web.test_browser import ARTIFACTS, live  # noqa: F401  (fixture)

EXAMPLE = Path(newsletter.__file__).parent / "skeleton" / "statements" / "act-now"
CONTACT = "Ana Pérez Quintana"
EMAIL = "ana.perez@red-cruz.example"


def copy_example(workspace: Path) -> None:
    """The example statement, its dates moved around today so that it takes signatures."""
    target = workspace / "statements" / "act-now"
    shutil.copytree(EXAMPLE, target)
    today = dt.datetime.now(dt.UTC).date()
    for file in target.glob("*.md"):
        text = re.sub(r"(?m)^opens = .*$", f"opens = {today - dt.timedelta(days=1)}",
                      file.read_text(encoding="utf-8"))
        text = re.sub(r"(?m)^closes = .*$", f"closes = {today + dt.timedelta(days=30)}", text)
        text = re.sub(r'(?m)^list = .*\n', "", text)  # the test workspace has no lists
        file.write_text(text, encoding="utf-8")


@pytest.mark.browser
def test_sign_in_spanish_confirm_approve_and_publish_in_a_real_browser(
    live: tuple[WebEnv, str],  # noqa: F811
) -> None:
    env, base = live
    workspace = Path(env.settings.workspace)
    copy_example(workspace)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_browser() as browser:
        page = browser.new_page(locale="es-ES")

        # 1. Sign in Spanish.
        page.goto(f"{base}/sign/act-now")
        assert page.locator("html").get_attribute("lang") == "es"
        page.get_by_role("heading", name="Actuar ya").wait_for()
        page.get_by_label("Organización", exact=True).fill("Red Cruz Migrante")
        page.get_by_label("País").select_option(label="México")
        page.get_by_label("Tipo de organización").select_option(
            label="Organización no gubernamental")
        page.get_by_label("Su nombre").fill(CONTACT)
        page.get_by_label("Dirección de correo electrónico").fill(EMAIL)
        page.screenshot(path=str(ARTIFACTS / "sign-1-form-es.png"), full_page=True)
        page.get_by_role("button", name="Firmar la declaración").click()
        page.get_by_role("heading", name="Revise su bandeja de entrada").wait_for()

        # 2. The verification mail reaches aiosmtpd, in Spanish; its link confirms.
        assert env.deliver().sent == 1
        [mail] = env.smtp.messages
        assert mail["To"].addresses[0].addr_spec == EMAIL
        assert str(mail["Subject"]) == "Confirme la firma de Red Cruz Migrante"
        page.goto(link_in(mail, f"{base}/sign/verify/"))
        page.get_by_role("button", name="Sí, confirmar la firma").click()
        page.get_by_role("heading", name="Firma confirmada").wait_for()
        page.screenshot(path=str(ARTIFACTS / "sign-2-confirmed-es.png"), full_page=True)

    # 3. The editors approve it in the CLI; 4. the archive is rebuilt.
    run = Cli(workspace)
    [waiting] = run.json("statement", "review", "act-now")
    assert (waiting["organisation"], waiting["country"], waiting["language"]) == (
        "Red Cruz Migrante", "MX", "es")
    assert run.json("statement", "review", "act-now", "--approve-all") == {
        "approved": [waiting["id"]], "rejected": []}
    run("archive", "build")

    site = workspace / "site"
    for lang, country in (("es", "México"), ("en", "Mexico")):
        statement_page = (site / lang / "statements" / "act-now" / "index.html").read_text(
            encoding="utf-8")
        assert f"<h3>{country}</h3>" in statement_page
        assert "Red Cruz Migrante" in statement_page
    files = [path for path in site.rglob("*") if path.is_file()]
    assert len(files) > 3
    for path in files:
        data = path.read_bytes()
        for secret in (CONTACT, "Pérez", EMAIL, "red-cruz.example"):
            assert secret.encode("utf-8") not in data, f"{secret!r} in {path}"
