"""The preferences page: language, name, lists, leave everything; CSRF-protected and audited."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import pytest

import newsletter.tokens
from newsletter.db.models import Subscription
from newsletter.tokens import Signer
from tests.conftest import SECRET
from tests.web.conftest import WebEnv


def _csrf(page_text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page_text)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture
def member(web: WebEnv) -> SimpleNamespace:
    """Ana, confirmed on 'news' (fr); 'events' is public, 'board' private."""
    news = web.add_list()
    events = web.add_list(slug="events", name="Events")
    board = web.add_list(slug="board", name="Board", public=False)
    sid = web.add_subscriber("ana@example.org", news, "confirmed", language="fr", name="Ana")
    token = Signer(SECRET).sign("preferences", sid, news)
    return SimpleNamespace(
        sid=sid, news=news, events=events, board=board, path=f"/preferences/{token}"
    )


def test_page_shows_the_subscribers_data_in_their_language(web: WebEnv, member) -> None:
    page = web.client.get(member.path + "?lang=en")  # the subscriber's own choice wins
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text and "Vos préférences" in page.text
    assert "ana@example.org" in page.text and 'value="Ana"' in page.text
    assert f'value="{member.news}" checked' in page.text
    assert f'value="{member.events}">' in page.text
    assert "Board" not in page.text  # private lists are not offered


def test_saving_changes_language_name_and_lists_and_audits_them(web: WebEnv, member) -> None:
    page = web.client.get(member.path)
    answer = web.client.post(
        member.path,
        data={
            "csrf": _csrf(page.text),
            "name": "Ana María",
            "language": "es",
            "list": [str(member.events)],
            "action": "save",
        },
    )
    assert answer.status_code == 200
    assert '<html lang="es">' in answer.text and "Sus preferencias se han guardado." in answer.text
    subscriber = web.subscriber("ana@example.org")
    assert (subscriber["language"], subscriber["name"]) == ("es", "Ana María")
    assert web.subscription(member.sid, member.events)["status"] == "confirmed"
    assert web.subscription(member.sid, member.news)["status"] == "unsubscribed"
    [change] = web.events("preferences")
    assert change["data"] == {"name": ["Ana", "Ana María"], "language": ["fr", "es"]}
    assert change["ip"]
    assert [e["list_id"] for e in web.events("unsubscribe")] == [member.news]
    assert [e["list_id"] for e in web.events("subscribe")] == [member.events]


def test_post_without_csrf_changes_nothing(web: WebEnv, member) -> None:
    answer = web.client.post(member.path, data={"language": "es", "list": []})
    assert answer.status_code == 403
    assert "Ce formulaire a expiré" in answer.text
    assert web.subscriber("ana@example.org")["language"] == "fr"
    assert web.subscription(member.sid, member.news)["status"] == "confirmed"
    assert web.events() == []


def test_csrf_of_another_subscriber_or_an_old_one_is_refused(
    web: WebEnv, member, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Signer(SECRET).sign("csrf", member.sid + 1, timestamped=True)
    with monkeypatch.context() as m:
        m.setattr(newsletter.tokens, "time", SimpleNamespace(time=lambda: time.time() - 3 * 86400))
        stale = Signer(SECRET).sign("csrf", member.sid, timestamped=True)
    for token in (other, stale, "forged.token"):
        answer = web.client.post(member.path, data={"csrf": token, "language": "es"})
        assert answer.status_code == 403
    assert web.subscriber("ana@example.org")["language"] == "fr"


def test_unsubscribe_from_everything(web: WebEnv, member) -> None:
    web.client.post(  # join events first, so there are two lists to leave
        member.path,
        data={
            "csrf": _csrf(web.client.get(member.path).text),
            "language": "fr",
            "list": [str(member.news), str(member.events)],
        },
    )
    page = web.client.get(member.path)
    answer = web.client.post(
        member.path, data={"csrf": _csrf(page.text), "action": "unsubscribe_all"}
    )
    assert answer.status_code == 200 and "Vous êtes désabonné·e" in answer.text
    assert web.subscription(member.sid, member.news)["status"] == "unsubscribed"
    assert web.subscription(member.sid, member.events)["status"] == "unsubscribed"
    assert {e["data"]["via"] for e in web.events("unsubscribe")} == {"all"}


@pytest.mark.parametrize(
    "fields",
    [{"list": ["abc"]}, {"list": ["999"]}, {"language": "de"}, {"name": "x" * 300}],
    ids=["list-not-a-number", "list-not-offered", "unknown-language", "long-name"],
)
def test_bad_form_values_get_a_400_in_the_right_language(web: WebEnv, member, fields) -> None:
    csrf = _csrf(web.client.get(member.path).text)
    answer = web.client.post(member.path, data={"csrf": csrf, "language": "fr", **fields})
    assert answer.status_code == 400
    assert '<html lang="fr">' in answer.text and 'role="alert"' in answer.text
    assert web.subscription(member.sid, member.news)["status"] == "confirmed"


def test_forged_and_wrong_purpose_tokens_are_refused(web: WebEnv, member) -> None:
    unsubscribe_token = Signer(SECRET).sign("unsubscribe", member.sid, member.news)
    for token in ("forged.token", unsubscribe_token, "x" * 1000):
        assert web.client.get(f"/preferences/{token}").status_code == 400
        refused = web.client.post(f"/preferences/{token}", data={
            "csrf": "x", "language": "es", "list": [str(member.events)]})
        assert refused.status_code == 400 and "ana@example.org" not in refused.text
    # Nothing changed and nothing was recorded.
    assert web.subscriber("ana@example.org")["language"] == "fr"
    assert web.subscription(member.sid, member.news)["status"] == "confirmed"
    assert web.subscription(member.sid, member.events) is None
    assert web.events() == []


def test_link_of_an_erased_subscriber_is_a_404(web: WebEnv) -> None:
    list_id = web.add_list()
    token = Signer(SECRET).sign("preferences", 12345, list_id)
    assert web.client.get(f"/preferences/{token}").status_code == 404
    gone = web.client.post(f"/preferences/{token}", data={"csrf": "x", "list": [str(list_id)]})
    assert gone.status_code == 404
    assert web.rows(Subscription) == [] and web.events() == []  # nobody was brought back


def test_page_shows_its_sites_name_escaped_and_the_subscribers_language_selected(
    web: WebEnv, member
) -> None:
    from dataclasses import replace

    web_state = web.client.app.state.web  # type: ignore[attr-defined]
    first = web.client.get(member.path).text
    assert f"<title>Vos préférences · {web_state.site.name}</title>" in first
    web_state.site = replace(
        web_state.site,
        name='Réseau "Accueil" & <Asile>',
        organisation="",
        language_names={"en": "English", "fr": "Français {{ 1 }}", "es": "Español"},
    )
    page = web.client.get(member.path).text
    name = "Réseau &#34;Accueil&#34; &amp; &lt;Asile&gt;"
    assert f"<title>Vos préférences · {name}</title>" in page
    assert f'<p class="site-name">{name}</p>' in page and f"<p>{name}</p>" in page
    assert '<option value="fr" lang="fr" selected>Français {{ 1 }}</option>' in page
    assert '<option value="en" lang="en">English</option>' in page
    assert page.count(" selected>") == 1
