"""The example issue, as a real message, through SpamAssassin's local rules (no network tests)."""

from __future__ import annotations

import email.policy
import re
import subprocess
from email.parser import BytesParser
from pathlib import Path

from newsletter import compose
from newsletter.config import load_settings
from newsletter.delivery.message import MessageBuilder, Recipient
from newsletter.tokens import Signer
from tests.conftest import require_file

ROOT = Path(__file__).resolve().parents[2]
SLUG = "2026-11-coalition-update"
SECRET = "test-secret-key-0123456789"
SPAMASSASSIN = Path("/usr/bin/spamassassin")


def test_the_hidden_preheader_costs_nothing_in_spamassassin(tmp_path: Path) -> None:
    program = require_file(SPAMASSASSIN, "apt-get install spamassassin (scripts/system-deps.sh)")
    settings = load_settings(tmp_path, environ={}, overrides={
        "newsletter": {"secret_key": SECRET, "base_url": "https://news.example.org",
                       "from_address": "news@example.org", "from_name": "Coalition"}})
    edition = compose.compile_issue(compose.load_issue(ROOT, SLUG), "en", settings)
    builder = MessageBuilder(settings=settings, edition=edition, issue_slug=SLUG, list_id=2,
                             list_slug="news", list_name="Coalition News", signer=Signer(SECRET))
    _, message = builder.build(Recipient(31, 13, "maria@example.net", "María José", {}))
    # -L: local tests only; -x: write no preferences file into $HOME.
    checked = subprocess.run([str(program), "-L", "-x"], input=message, capture_output=True,
                             timeout=120, check=True, env={"PATH": "/usr/bin:/bin",
                                                           "HOME": str(tmp_path)})
    status = BytesParser(policy=email.policy.default).parsebytes(checked.stdout)["X-Spam-Status"]
    tests = status.split("tests=", 1)[1].split(" autolearn")[0].replace("\n", "").replace("\t", "")
    hits = {name.strip() for name in tests.split(",")}
    assert "HTML_MESSAGE" in hits  # the rules did read the HTML part
    assert "HTML_FONT_LOW_CONTRAST" not in hits, status
    score = re.search(r"score=(-?[0-9.]+)", status)
    assert score and float(score.group(1)) <= 0, status  # nothing in the message costs points
