"""What a token promises beyond the round trip: links already in inboxes keep working, each
refusal says why in one line, the size limit is exact, expiry is measured in whole seconds.
"""

from __future__ import annotations

import base64
import hmac
import time

import pytest

import newsletter.tokens
from newsletter.tokens import Signer, TokenError

GOLDEN = Signer("golden-key")

# Tokens as this format has always written them: mails sent months ago carry them.
ISSUED = [
    ("unsubscribe", (12, 3), "MTI6Mw.J4gmqJCyO2wCYKrDICrnGg"),
    ("preferences", (4242, 7), "NDI0Mjo3.3y6OxIlc8om0HN4ZD0jXJg"),
    ("verp", (1, 2, 3), "MToyOjM.48dokkHQAp72mGq_fSqaWQ"),
]


@pytest.mark.parametrize(("purpose", "values", "token"), ISSUED)
def test_tokens_in_mails_already_sent_still_verify_and_are_written_the_same(
        purpose: str, values: tuple[int, ...], token: str) -> None:
    assert GOLDEN.sign(purpose, *values) == token
    data = GOLDEN.verify(purpose, token)
    assert data.values == values and data.purpose == purpose and data.issued_at is None


def test_every_id_round_trips_whatever_its_base64_spelling_ends_with() -> None:
    for values in [(n, n * 7 + 3) for n in range(300)] + [(2**40, 1), (0,)]:
        assert GOLDEN.verify("unsubscribe", GOLDEN.sign("unsubscribe", *values)).values == values


@pytest.mark.parametrize(("token", "reason"), [
    ("x" * 300 + "." + "y" * 300, "malformed token"),  # too long, even with one dot
    ("a.b.c", "malformed token"),
    ("MTI6Mw.J4gmqJCyO2wCYKrDICrnGh", "invalid token"),
    (GOLDEN.sign("unsubscribe", 1) + "", "invalid token"),  # right key, wrong purpose below
])
def test_each_refusal_says_why(token: str, reason: str) -> None:
    with pytest.raises(TokenError) as refused:
        GOLDEN.verify("preferences", token)
    assert str(refused.value) == reason


def test_a_genuine_token_with_a_bad_payload_is_malformed_not_invalid() -> None:
    for payload in ("_w", "YWJj"):  # not ASCII; not numbers ("abc")
        digest = hmac.new(b"golden-key", f"csrf|{payload}".encode(), "sha256").digest()[:16]
        mac = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        with pytest.raises(TokenError) as refused:
            GOLDEN.verify("csrf", f"{payload}.{mac}")
        assert str(refused.value) == "malformed token"


def test_tokens_are_limited_to_512_characters() -> None:
    # Unpadded base64 is never 1 more than a multiple of 4 long, so genuine tokens jump from
    # 511 to 513 characters; a forged one of exactly 512 is still checked, and refused.
    longest = GOLDEN.sign("preferences", 10, *[1] * 182)
    assert len(longest) == 511
    assert GOLDEN.verify("preferences", longest).values == (10, *[1] * 182)
    too_long = GOLDEN.sign("preferences", *[1] * 184)
    assert len(too_long) == 513
    with pytest.raises(TokenError, match="^malformed token$"):
        GOLDEN.verify("preferences", too_long)
    with pytest.raises(TokenError, match="^invalid token$"):
        GOLDEN.verify("preferences", "A" + longest)


def test_expiry_allows_exactly_max_age_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_800_000_000.0
    monkeypatch.setattr(newsletter.tokens.time, "time", lambda: now)
    token = GOLDEN.sign("confirm", 5, timestamped=True)
    monkeypatch.setattr(newsletter.tokens.time, "time", lambda: now + 60)
    assert GOLDEN.verify("confirm", token, max_age=60).issued_at == int(now)
    monkeypatch.setattr(newsletter.tokens.time, "time", lambda: now + 61)
    with pytest.raises(TokenError) as refused:
        GOLDEN.verify("confirm", token, max_age=60)
    assert str(refused.value) == "expired token"
    assert time.time() > 0  # the patch is local to the module under test


def test_a_missing_key_or_purpose_is_a_clear_error() -> None:
    with pytest.raises(TokenError) as refused:
        Signer("")
    assert str(refused.value) == (
        "no secret key is set: set NEWSLETTER_SECRET_KEY or [newsletter] secret_key")
    with pytest.raises(ValueError, match="^unknown token purpose 'login'$"):
        GOLDEN.sign("login", 1)
