"""Data rights in headless Chromium, in English, French and Spanish: download my data, delete me,
then the address can come back neither through the subscribe form nor through an import.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsletter.links import preferences_url
from tests.conftest import Cli, require_chromium, require_module
from tests.web.conftest import WebEnv
from tests.web.test_browser import ARGS, ARTIFACTS, live  # noqa: F401  (fixture)

WORDS = {
    "en": {"download": "Download my data", "delete": "Delete me",
           "ask": "Delete your data", "yes": "Yes, delete my data",
           "done": "Your data is deleted", "email": "Email address", "subscribe": "Subscribe",
           "inbox": "Check your inbox"},
    "fr": {"download": "Télécharger mes données", "delete": "Me supprimer",
           "ask": "Supprimer vos données", "yes": "Oui, supprimer mes données",
           "done": "Vos données sont supprimées", "email": "Adresse e-mail",
           "subscribe": "S’abonner", "inbox": "Consultez votre boîte de réception"},
    "es": {"download": "Descargar mis datos", "delete": "Eliminarme",
           "ask": "Eliminar sus datos", "yes": "Sí, eliminar mis datos",
           "done": "Sus datos han sido eliminados",
           "email": "Dirección de correo electrónico", "subscribe": "Suscribirse",
           "inbox": "Revise su bandeja de entrada"},
}
LOCALES = {"en": "en-GB", "fr": "fr-FR", "es": "es-ES"}


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_download_delete_and_no_way_back_in_a_real_browser(
    live: tuple[WebEnv, str], lang: str, tmp_path: Path  # noqa: F811
) -> None:
    sync_api = require_module("playwright.sync_api")
    chromium = require_chromium()
    env, base = live
    words = WORDS[lang]
    address = f"rosa.{lang}@example.org"
    news = env.add_list(name="Network News")
    sid = env.add_subscriber(address, news, "confirmed", language=lang, name="Rosa Quintero")
    env.add_subscriber("someone.else@example.org", news, "confirmed", name="Other Person")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(locale=LOCALES[lang], accept_downloads=True)

        # 1. Download my data: a JSON file with Rosa's data and nobody else's.
        page.goto(preferences_url(base, env.signer, sid, news))
        assert page.locator("html").get_attribute("lang") == lang
        with page.expect_download() as info:
            page.get_by_role("button", name=words["download"]).click()
        saved = tmp_path / "data.json"
        info.value.save_as(saved)
        data = json.loads(saved.read_text(encoding="utf-8"))
        assert data["subscriber"]["email"] == address
        assert data["subscriber"]["name"] == "Rosa Quintero"
        assert [s["list"] for s in data["subscriptions"]] == ["news"]
        assert "someone.else" not in saved.read_text(encoding="utf-8")

        # 2. Delete me: a page that asks first, then the erasure.
        page.get_by_role("link", name=words["delete"]).click()
        page.get_by_role("heading", name=words["ask"]).wait_for()
        assert env.subscriber(address) is not None
        page.screenshot(path=str(ARTIFACTS / f"data-rights-delete-{lang}.png"), full_page=True)
        page.get_by_role("button", name=words["yes"]).click()
        page.get_by_role("heading", name=words["done"]).wait_for()
        assert env.subscriber(address) is None

        # 3. Subscribing again through the form looks the same as ever, and sends nothing.
        page.goto(f"{base}/subscribe/news")
        page.get_by_label(words["email"]).fill(address)
        page.get_by_role("button", name=words["subscribe"]).click()
        page.get_by_role("heading", name=words["inbox"]).wait_for()
        browser.close()
    assert env.deliver().sent == 0
    assert env.smtp.messages == []
    assert env.subscriber(address) is None

    # 4. Importing the address as confirmed is refused.
    sheet = tmp_path / "old-list.csv"
    sheet.write_text(f"email,name\n{address.upper()},Rosa\n", encoding="utf-8")
    result = Cli(env.settings.workspace)("subscribers", "import", str(sheet), "--list", "news",
                                         "--confirmed", "--consent-source", "old sheet")
    assert "1 rejected" in result.output and "suppressed" in result.output
    assert env.subscriber(address) is None
