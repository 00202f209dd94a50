"""The preferences page's data rights: "Download my data" and "Delete me" (GDPR art. 15, 17, 20)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from newsletter.db.models import Suppression
from newsletter.keyring import address_hash, read_address_key
from newsletter.tokens import Signer
from tests.conftest import SECRET
from tests.web.conftest import WebEnv


def _key(web: WebEnv) -> str:
    with web.engine.connect() as conn:
        return read_address_key(conn)


def _csrf(page_text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page_text)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture
def two(web: WebEnv) -> SimpleNamespace:
    """Ana (fr) and Bea (es) on the same list; each has asked for a preferences link."""
    news = web.add_list()
    ana = web.add_subscriber("ana@example.org", news, "confirmed", language="fr", name="Ana")
    bea = web.add_subscriber("bea@example.org", news, "confirmed", language="es", name="Bea")
    for address in ("ana@example.org", "bea@example.org"):
        assert web.client.post("/manage", data={"email": address}).status_code == 200
    path = f"/preferences/{Signer(SECRET).sign('preferences', ana, news)}"
    return SimpleNamespace(news=news, ana=ana, bea=bea, path=path)


def test_download_holds_the_subscribers_data_and_nobody_elses(web: WebEnv, two) -> None:
    page = web.client.get(two.path)
    assert "Télécharger mes données" in page.text and f'action="{two.path}/data"' in page.text
    answer = web.client.post(f"{two.path}/data", data={"csrf": _csrf(page.text)})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-disposition"] == (
        'attachment; filename="newsletter-my-data.json"')
    assert answer.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    data = json.loads(answer.content)
    assert data["subscriber"]["email"] == "ana@example.org"
    assert [s["status"] for s in data["subscriptions"]] == ["confirmed"]
    assert [e["kind"] for e in data["consent_events"]] == ["manage"]
    assert "bea" not in answer.text.lower()


def test_download_without_a_good_csrf_token_gives_nothing(web: WebEnv, two) -> None:
    answer = web.client.post(f"{two.path}/data", data={"csrf": "forged"})
    assert answer.status_code == 403
    assert "ana@example.org" not in answer.text


def test_delete_asks_first_then_erases_like_the_cli(web: WebEnv, two) -> None:
    confirm = web.client.get(f"{two.path}/delete")
    assert confirm.status_code == 200 and "Supprimer vos données" in confirm.text
    assert "ana@example.org" in confirm.text
    assert confirm.headers["x-frame-options"] == "DENY"  # no framing a one-button delete
    assert confirm.headers["referrer-policy"] == "no-referrer"
    assert web.subscriber("ana@example.org") is not None  # a GET changes nothing
    answer = web.client.post(f"{two.path}/delete", data={"csrf": _csrf(confirm.text)})
    assert answer.status_code == 200 and "Vos données sont supprimées" in answer.text
    assert web.subscriber("ana@example.org") is None
    if web.engine.dialect.name == "sqlite":  # the WAL was copied into the file and emptied
        assert Path(f"{web.engine.url.database}-wal").stat().st_size == 0
    assert [row["recipient"] for row in web.outbox()] == ["bea@example.org"]
    [suppression] = web.rows(Suppression)
    assert suppression["email_hash"] == address_hash("ana@example.org", _key(web))
    assert suppression["reason"] == "erased"
    assert web.events("erase")[0]["source"] == "preferences-page"
    # The same POST again (a double click) finds nothing left and says the same, in the
    # browser's language now that the subscriber's own is erased too.
    again = web.client.post(f"{two.path}/delete", data={"csrf": _csrf(confirm.text)},
                            headers={"Accept-Language": "fr"})
    assert again.status_code == 200 and "Vos données sont supprimées" in again.text
    # The link now leads nowhere, and the form sends no mail to the address.
    assert web.client.get(two.path).status_code == 404
    web.client.post("/subscribe/news", data={"email": "ana@example.org", "name": "Ana"})
    assert [row["recipient"] for row in web.outbox()] == ["bea@example.org"]
    assert web.subscriber("ana@example.org") is None


def test_delete_without_a_good_csrf_token_deletes_nothing(web: WebEnv, two) -> None:
    answer = web.client.post(f"{two.path}/delete", data={"csrf": ""})
    assert answer.status_code == 403
    assert web.subscriber("ana@example.org") is not None


def test_a_delete_link_for_someone_else_does_not_work(web: WebEnv, two) -> None:
    ana_page = web.client.get(f"{two.path}/delete")
    bea_path = f"/preferences/{Signer(SECRET).sign('preferences', two.bea, two.news)}"
    answer = web.client.post(f"{bea_path}/delete", data={"csrf": _csrf(ana_page.text)})
    assert answer.status_code == 403  # Ana's CSRF token is bound to Ana
    assert web.subscriber("bea@example.org") is not None
    forged = web.client.post("/preferences/forged.token/delete", data={"csrf": "x"})
    assert forged.status_code == 400
