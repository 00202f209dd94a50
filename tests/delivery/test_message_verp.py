"""VERP envelope senders name the delivery, and forged ones are rejected."""

from __future__ import annotations

from typing import Any

import pytest

from newsletter.delivery.message import MessageBuilder, Recipient, decode_verp
from newsletter.delivery.verp import encode_verp
from newsletter.tokens import Signer

SECRET = "test-secret-key-0123456789"


def test_verp_roundtrip_gives_back_the_delivery_id(message_settings: Any) -> None:
    signer = Signer(SECRET)
    for delivery_id in (1, 42, 10**12):
        address = encode_verp(message_settings, signer, delivery_id)
        assert address.startswith("bounces+") and address.endswith("@bounces.example.org")
        assert decode_verp(address, signer) == delivery_id


def test_builder_envelope_sender_decodes_to_its_delivery(
        message_settings: Any, fake_edition: Any) -> None:
    signer = Signer(SECRET)
    builder = MessageBuilder(settings=message_settings, edition=fake_edition(), issue_slug="i",
                             list_id=1, list_slug="news", list_name="News", signer=signer)
    sender, _ = builder.build(Recipient(777, 5, "x@example.net", "X", {}))
    assert decode_verp(sender, signer) == 777


@pytest.mark.parametrize("form", ["<{a}>", "Mail Delivery <{a}>", " {a} ", "{upper}"])
def test_decode_accepts_the_usual_address_forms(message_settings: Any, form: str) -> None:
    signer = Signer(SECRET)
    address = encode_verp(message_settings, signer, 55)
    local, _, domain = address.partition("@")
    text = form.format(a=address, upper=f"{local}@{domain.upper()}")
    assert decode_verp(text, signer) == 55


def test_old_key_still_decodes_after_rotation(message_settings: Any) -> None:
    address = encode_verp(message_settings, Signer("old-secret-key-000000000"), 8)
    rotated = Signer(SECRET, old_keys=["old-secret-key-000000000"])
    assert decode_verp(address, rotated) == 8


def test_forged_or_foreign_addresses_are_rejected(message_settings: Any) -> None:
    signer = Signer(SECRET)
    genuine = encode_verp(message_settings, signer, 9)
    local, _, domain = genuine.partition("@")
    token = local.split("+", 1)[1]
    payload, mac = token.split(".")
    other_key = encode_verp(message_settings, Signer("another-secret-key-999999"), 9)
    wrong_purpose = f"bounces+{signer.sign('unsubscribe', 9)}@{domain}"
    two_values = f"bounces+{signer.sign('verp', 9, 10)}@{domain}"
    flipped = f"bounces+{payload}.{mac[:5]}{'A' if mac[5] != 'A' else 'B'}{mac[6:]}@{domain}"
    swapped_id = f"bounces+{signer.sign('verp', 10).split('.')[0]}.{mac}@{domain}"
    for forged in (other_key, wrong_purpose, two_values, flipped, swapped_id, "bounces@" + domain,
                   "amelie@example.net", "", "bounces+@x", "bounces+a.b.c@x", "x" * 1000):
        assert decode_verp(forged, signer) is None, forged
    assert decode_verp(None, signer) is None  # type: ignore[arg-type]
