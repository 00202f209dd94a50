"""The example issue, compiled by the real composer, becomes correct messages in EN, FR and ES."""

from __future__ import annotations

import email.policy
import re
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from newsletter import compose
from newsletter.config import load_settings
from newsletter.delivery.message import MessageBuilder, Recipient
from newsletter.tokens import Signer

ROOT = Path(__file__).resolve().parents[2]
SLUG = "2026-11-coalition-update"
SECRET = "test-secret-key-0123456789"
PARSER = BytesParser(policy=email.policy.default)


@pytest.fixture(scope="module")
def editions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    settings = load_settings(tmp_path_factory.mktemp("ws"), environ={}, overrides={
        "newsletter": {"secret_key": SECRET, "base_url": "https://news.example.org",
                       "from_address": "news@example.org", "from_name": "Coalition"}})
    source = compose.load_issue(ROOT, SLUG)
    return settings, {lang: compose.compile_issue(source, lang, settings)
                      for lang in ("en", "fr", "es")}


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_example_issue_builds_a_standard_message_in_each_language(
        editions: tuple[Any, dict[str, Any]], lang: str) -> None:
    settings, compiled = editions
    edition = compiled[lang]
    signer = Signer(SECRET)
    builder = MessageBuilder(settings=settings, edition=edition, issue_slug=SLUG, list_id=2,
                             list_slug="news", list_name="Coalition News", signer=signer)
    sender, data = builder.build(Recipient(31, 13, "maria@example.net", "María José", {}))
    msg = PARSER.parsebytes(data)
    assert msg.defects == []
    assert msg["Subject"] == edition.subject
    assert msg["Content-Language"] == lang
    assert msg["Feedback-ID"] == f"{SLUG}:news:newsletter:newsletter"
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    text_part, html_part = msg.iter_parts()
    text, html = (p.get_content().replace("\r\n", "\n") for p in (text_part, html_part))
    unsubscribe = re.findall(r"<([^>]*)>", msg["List-Unsubscribe"])[0]
    token = unsubscribe.rsplit("/", 1)[1]
    assert signer.verify("unsubscribe", token).values == (13, 2)
    assert unsubscribe in text and unsubscribe in html
    assert f'lang="{lang}"' in html
    assert "María José" in text
    assert edition.web_url in html
    assert builder.web_url == edition.web_url
    assert sender.startswith("bounces+") and sender.endswith("@bounces.example.org")
