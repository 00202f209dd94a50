"""Hostile input to the data-rights paths: each gets a clear 4xx or one-line error, and nobody
else's data is lost.

tests/data/hostile/erasure/ holds:
- address_*.txt: what an operator may type to `subscribers remove` and `export-data`, including
  SQL LIKE wildcards (% and _) and an address that sits inside longer ones;
- form_*: bodies posted to /preferences/<token>/delete and /data (bad CSRF, not UTF-8, too
  large, too many fields, JSON of the wrong shape, an unknown type);
- token_*.token: the token in those URLs (forged, too long, for another purpose, malformed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert, select

from newsletter.db.models import Event, Subscriber
from newsletter.tokens import Signer
from tests.conftest import SECRET, Cli

# The web app's fixtures, used here by name (tests/web/conftest.py is not in scope here).
from tests.web.conftest import WebEnv, smtp, web, web_extra  # noqa: F401

HOSTILE = Path(__file__).parent.parent / "data" / "hostile" / "erasure"
PEOPLE = ["a@example.org", "xa@example.org", "a@example.org.uk", "b@example.org",
          "pc@example.org"]
# address file -> the one-line error, or None when it is a valid address (then erased alone)
ADDRESSES = {
    "address_percent_wildcard.txt": None,
    "address_underscore_wildcard.txt": None,
    "address_inside_longer_ones.txt": None,
    "address_like_escape.txt": "invalid email address",
    "address_sql_injection.txt": "invalid email address",
    "address_empty.txt": "empty email address",
    "address_too_long.txt": "too long",
    "address_two_at_signs.txt": "invalid email address",
}
FORMS = {
    "form_empty.form": ("application/x-www-form-urlencoded", 403),
    "form_csrf_forged.form": ("application/x-www-form-urlencoded", 403),
    "form_csrf_repeated_forged.form": ("application/x-www-form-urlencoded", 403),
    "form_invalid_utf8.form": ("application/x-www-form-urlencoded", 400),
    "form_oversize.form": ("application/x-www-form-urlencoded", 413),
    "form_too_many_fields.form": ("application/x-www-form-urlencoded", 400),
    "form_json_array.json": ("application/json", 400),
    "form_json_not_text.json": ("application/json", 400),
    "form_json_malformed.json": ("application/json", 400),
    "form_unknown_type.bin": ("application/octet-stream", 415),
}
TOKENS = ["token_forged.token", "token_too_long.token", "token_wrong_purpose.token",
          "token_no_dot.token"]


def test_the_corpus_is_complete() -> None:
    assert {p.name for p in HOSTILE.iterdir()} == set(ADDRESSES) | set(FORMS) | set(TOKENS)


def _people(run: Cli, services) -> None:
    run("lists", "add", "news", "--name", "News", "--languages", "en")
    for address in PEOPLE:
        run("subscribers", "add", address, "--list", "news", "--name", f"Name of {address}")
    with services.engine.begin() as conn:  # others' audit rows that mention longer addresses
        conn.execute(insert(Event).values(kind="manage", source="https://x.example/?e=xa%40"
                                          "example.org&f=a@example.org.uk", data={}))


@pytest.mark.parametrize("name", sorted(ADDRESSES))
def test_hostile_addresses_erase_only_themselves_or_fail_in_one_line(run, services,
                                                                     name: str) -> None:
    _people(run, services)
    address = (HOSTILE / name).read_text(encoding="utf-8").strip("\n")
    expected = ADDRESSES[name]
    for command in (["subscribers", "remove", address], ["subscribers", "export-data", address]):
        result = run(*command, ok=False)
        assert "Traceback" not in result.output
        if expected is not None:
            assert result.exit_code == 1 and expected in result.output
            assert len(result.output.strip().splitlines()) == 1
    with services.engine.connect() as conn:
        left = set(conn.scalars(select(Subscriber.email)))
        source = conn.scalar(select(Event.source).where(Event.kind == "manage"))
    assert left == set(PEOPLE) - {address}
    assert source == "https://x.example/?e=xa%40example.org&f=a@example.org.uk"


@pytest.fixture
def target(web: WebEnv) -> tuple[int, str]:  # noqa: F811
    news = web.add_list()
    sid = web.add_subscriber("keep@example.org", news, "confirmed", name="Keep Me")
    return sid, f"/preferences/{Signer(SECRET).sign('preferences', sid, news)}"


@pytest.mark.parametrize("name", sorted(FORMS))
@pytest.mark.parametrize("action", ["delete", "data"])
def test_hostile_forms_get_a_4xx_and_delete_nothing(
    web: WebEnv, target, name: str, action: str  # noqa: F811
) -> None:
    _, path = target
    content_type, status = FORMS[name]
    answer = web.client.post(f"{path}/{action}", content=(HOSTILE / name).read_bytes(),
                             headers={"content-type": content_type})
    assert answer.status_code == status
    assert "keep@example.org" not in answer.text
    assert web.subscriber("keep@example.org")["name"] == "Keep Me"


@pytest.mark.parametrize("name", TOKENS)
def test_hostile_tokens_get_a_400_and_delete_nothing(
    web: WebEnv, target, name: str  # noqa: F811
) -> None:
    sid, _ = target
    token = (HOSTILE / name).read_text(encoding="ascii")
    if token == "unsubscribe":  # a genuine token, but made for one-click unsubscribe
        token = Signer(SECRET).sign("unsubscribe", sid, 1)
    assert web.client.get(f"/preferences/{token}/delete").status_code == 400
    for action in ("delete", "data"):
        assert web.client.post(f"/preferences/{token}/{action}",
                               data={"csrf": "x"}).status_code == 400
    assert web.subscriber("keep@example.org") is not None
