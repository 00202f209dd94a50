"""End to end in headless Chromium against a real uvicorn server: subscribe in French, confirm
from the mail, switch to Spanish, leave through the page, then one-click as Gmail does it.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from newsletter.links import unsubscribe_url
from newsletter.services import build_services
from tests.conftest import (
    CHROMIUM_ARGS,
    drop_newsletter_env,
    require_chromium,
    require_module,
    write_config,
)
from tests.web.conftest import SmtpServer, WebEnv, link_in, web_config

ARGS = CHROMIUM_ARGS
ARTIFACTS = Path(__file__).parents[1] / "artifacts" / "web"


@pytest.fixture
def live(
    tmp_path: Path, db_url: str, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[WebEnv, str]]:
    """The app under a real uvicorn server in a thread, its base URL being the server's."""
    import uvicorn

    from newsletter.web import create_app

    drop_newsletter_env(monkeypatch)
    # The test binds port 0 and keeps the socket: no other run can take the port meanwhile.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    ws = tmp_path / "ws"
    write_config(ws, db_url, web_config(smtp))
    settings = load_settings(ws, overrides={"newsletter": {"base_url": base}})
    engine = make_engine(settings.database_url)
    app = create_app(build_services(settings, engine=engine))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    env = WebEnv(settings, engine, None, smtp)  # type: ignore[arg-type]
    yield env, base
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()
    engine.dispose()


@pytest.mark.browser
@pytest.mark.sqlite_only
def test_subscriber_journey_in_a_real_browser(live: tuple[WebEnv, str]) -> None:
    sync_api = require_module("playwright.sync_api")
    chromium = require_chromium()
    env, base = live
    news = env.add_list(name="Network News")
    events = env.add_list(slug="events", name="Events")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(locale="fr-FR")

        # 1. Subscribe in French.
        page.goto(f"{base}/subscribe/news")
        assert page.locator("html").get_attribute("lang") == "fr"
        page.get_by_label("Adresse e-mail").fill("ana@example.org")
        page.get_by_label("Nom").fill("Ana")
        page.get_by_label("Langue de la lettre d’information").select_option("fr")
        page.screenshot(path=str(ARTIFACTS / "1-subscribe-form.png"), full_page=True)
        page.get_by_role("button", name="S’abonner").click()
        page.get_by_role("heading", name="Consultez votre boîte de réception").wait_for()
        page.screenshot(path=str(ARTIFACTS / "1-check-inbox.png"), full_page=True)
        subscriber = env.subscriber("ana@example.org")
        assert subscriber["language"] == "fr"
        assert env.subscription(subscriber["id"], news)["status"] == "pending"

        # 2. The confirmation mail reaches the SMTP server, in French.
        assert env.deliver().sent == 1
        [mail] = env.smtp.messages
        assert mail["Subject"] == "Merci de confirmer votre abonnement à Network News"
        assert mail["Content-Language"] == "fr"
        assert "Quelqu’un, probablement vous" in mail.get_body(("plain",)).get_content()
        assert [row["status"] for row in env.outbox()] == ["sent"]

        # 3. Open its link and confirm.
        page.goto(link_in(mail, f"{base}/confirm/"))
        assert env.subscription(subscriber["id"], news)["status"] == "pending"  # GET did nothing
        page.get_by_role("button", name="Oui, je confirme mon abonnement").click()
        page.get_by_role("heading", name="Abonnement confirmé").wait_for()
        page.screenshot(path=str(ARTIFACTS / "3-confirmed.png"), full_page=True)
        assert env.subscription(subscriber["id"], news)["status"] == "confirmed"
        assert env.events("confirm")[0]["ip"] == "127.0.0.1"

        # 4. Preferences: Spanish, and join the Events list too.
        page.get_by_role("link", name="Gérer vos préférences").click()
        page.get_by_label("Langue des lettres d’information").select_option("es")
        page.get_by_label("Events").check()
        page.get_by_role("button", name="Enregistrer mes préférences").click()
        page.get_by_text("Sus preferencias se han guardado.").wait_for()
        assert page.locator("html").get_attribute("lang") == "es"
        page.screenshot(path=str(ARTIFACTS / "4-preferences-es.png"), full_page=True)
        assert env.subscriber("ana@example.org")["language"] == "es"
        assert env.subscription(subscriber["id"], events)["status"] == "confirmed"

        # 5. Unsubscribe from Network News through the page behind a newsletter's link.
        page.goto(unsubscribe_url(base, env.signer, subscriber["id"], news))
        assert env.subscription(subscriber["id"], news)["status"] == "confirmed"
        page.screenshot(path=str(ARTIFACTS / "5-unsubscribe.png"), full_page=True)
        page.get_by_role("button", name="Darse de baja").click()
        page.get_by_role("heading", name="Se ha dado de baja").wait_for()
        page.screenshot(path=str(ARTIFACTS / "5-unsubscribed.png"), full_page=True)
        assert env.subscription(subscriber["id"], news)["status"] == "unsubscribed"
        browser.close()

    # 6. One-click from Events, byte for byte the way Gmail posts it.
    target = urlsplit(unsubscribe_url(base, env.signer, subscriber["id"], events))
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
    body = b"List-Unsubscribe=One-Click"
    conn.request(
        "POST",
        target.path,
        body=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(len(body)),
            "User-Agent": "Mozilla/5.0 (compatible; Google-Unsubscribe)",
        },
    )
    answer = conn.getresponse()
    answer.read()
    conn.close()
    assert answer.status == 200 and answer.getheader("Location") is None
    assert env.subscription(subscriber["id"], events)["status"] == "unsubscribed"
    assert [e["data"]["via"] for e in env.events("unsubscribe")] == ["page", "one-click"]
