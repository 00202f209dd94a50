"""Every hostile request in tests/data/hostile/web/ gets a clear 4xx with the security headers
and changes nothing in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from newsletter.db.models import Base
from tests.web.conftest import WebEnv

CORPUS = Path(__file__).parents[1] / "data" / "hostile" / "web" / "requests.json"
REQUESTS = json.loads(CORPUS.read_text(encoding="utf-8"))["requests"]
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options",
                    "referrer-policy")


def text_of(spec: Any) -> str:
    """A string, or {prefix, repeat, times, suffix} for the large ones."""
    if isinstance(spec, str):
        return spec
    return spec.get("prefix", "") + spec["repeat"] * spec["times"] + spec.get("suffix", "")


def path_of(web: WebEnv, request: dict[str, Any]) -> str:
    path = text_of(request["path"])
    if "{token:" in path:
        head, rest = path.split("{token:", 1)
        spec, tail = rest.split("}", 1)
        purpose, *ids = spec.split(":")
        token = web.signer.sign(purpose, *map(int, ids), timestamped=purpose == "confirm")
        path = head + token[: -request.get("truncate_token", 0) or None] + tail
    return path


def snapshot(web: WebEnv) -> dict[str, int]:
    with web.engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in Base.metadata.tables.items()
        }


def test_the_corpus_is_big_enough() -> None:
    assert len(REQUESTS) >= 12
    assert len({r["name"] for r in REQUESTS}) == len(REQUESTS)


@pytest.mark.parametrize("request_spec", REQUESTS, ids=[r["name"] for r in REQUESTS])
def test_hostile_request_gets_a_clear_4xx_and_changes_nothing(
    web: WebEnv, request_spec: dict[str, Any]
) -> None:
    list_id = web.add_list()
    web.add_subscriber("someone@example.org", list_id, "confirmed")
    before = snapshot(web)
    headers = {name: text_of(value) for name, value in request_spec.get("headers", {}).items()}
    body = (
        bytes.fromhex(request_spec["body_hex"])
        if "body_hex" in request_spec
        else text_of(request_spec.get("body", "")).encode()
    )
    answer = web.client.request(
        request_spec["method"], path_of(web, request_spec), content=body or None, headers=headers
    )
    assert answer.status_code == request_spec["status"], answer.text[:300]
    for name in SECURITY_HEADERS:
        assert name in answer.headers, name
    assert "Traceback" not in answer.text
    if answer.headers["content-type"].startswith("text/html"):
        assert "<h1" in answer.text  # a page that says what went wrong, not an empty body
    unwanted = request_spec.get("must_not_contain")
    if unwanted:
        assert unwanted not in answer.text and unwanted not in str(answer.headers)
    assert snapshot(web) == before
