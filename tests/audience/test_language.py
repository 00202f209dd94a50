"""The language policy: what a list offers, which requests it accepts, what subscribers read."""

from __future__ import annotations

import pytest
from sqlalchemy import String, bindparam, select

from newsletter.audience.language import (
    FALL_BACK,
    REJECT,
    LanguageError,
    ListLanguages,
    effective_language,
    offered_languages,
    parse_languages,
)
from newsletter.audience.listedits import add_list
from newsletter.audience.subscribers import add_subscriber
from newsletter.db import sender
from newsletter.db.tables import LISTS
from newsletter.delivery import recipients
from newsletter.errors import ValidationError

EN_FR = ListLanguages(("en", "fr"), "en", "list 'news'")


def test_a_list_offers_its_languages_as_any_driver_returns_them() -> None:
    assert offered_languages(["en", "fr"], "en") == ("en", "fr")
    assert offered_languages('["fr", "es"]', "fr") == ("fr", "es")  # a raw SQLite cursor
    assert offered_languages([], "de") == ("de",)
    assert ListLanguages.of({"languages": ["fr", "en"], "default_language": "fr",
                             "slug": "news"}) == ListLanguages(("fr", "en"), "fr", "list 'news'")


@pytest.mark.parametrize("asked", ["fr", " FR ", "fr_CA", "fr-be", "Français", "French",
                                   "francés"])
def test_a_code_a_regional_variant_or_a_name_is_accepted_under_either_policy(asked) -> None:
    assert EN_FR.accept(asked, REJECT) == "fr"
    assert EN_FR.accept(asked, FALL_BACK) == "fr"


@pytest.mark.parametrize("asked", ["", "  ", None])
def test_no_language_asked_means_the_lists_default(asked) -> None:
    assert EN_FR.accept(asked, REJECT) == "en"


@pytest.mark.parametrize("asked", ["es", "Español", "xx", "<script>"])
def test_a_language_the_list_lacks_is_refused_in_one_line_or_replaced_by_the_default(
        asked) -> None:
    with pytest.raises(LanguageError) as refused:
        EN_FR.accept(asked, REJECT)
    assert str(refused.value) == f"language {asked!r} is not offered by list 'news' (en, fr)"
    assert refused.value.field == "language"
    assert EN_FR.accept(asked, FALL_BACK) == "en"


def test_a_subscriber_reads_a_list_in_their_language_when_offered_else_its_default() -> None:
    assert [EN_FR.effective(lang) for lang in ("fr", "en", "es", None)] == ["fr", "en", "en", "en"]
    assert effective_language("es", '["en", "es"]', "en") == "es"
    assert effective_language("es", ["en", "fr"], "fr") == "fr"
    assert effective_language(None, ["en", "fr"], "fr") == "fr"


def test_several_lists_offer_every_language_any_of_them_offers() -> None:
    both = ListLanguages.union([EN_FR, ListLanguages(("es", "en"), "es")], "en", "your lists")
    assert both.offered == ("en", "fr", "es")
    assert ListLanguages.union([], "fr", "your lists").offered == ("fr",)


def test_the_sql_expression_gives_the_same_answer_as_python(services) -> None:
    with services.engine.connect() as conn:
        stmt = select(EN_FR.effective_sql(bindparam("own", type_=String)))
        found = [conn.execute(stmt, {"own": own}).scalar() for own in ("fr", "es", None, "en")]
    assert found == [EN_FR.effective(own) for own in ("fr", "es", None, "en")]


def test_a_subscriber_whose_language_one_list_lacks_gets_its_default_not_a_blocked_send(
        services) -> None:
    """One language for all their lists: on the en/fr list a Spanish reader gets English."""
    add_list(services.engine, slug="news", name="News", languages=["en", "fr"],
             default_language="en")
    add_list(services.engine, slug="redes", name="Redes", languages=["es", "en"],
             default_language="es")
    key = services.keyring.address_key
    for slug in ("news", "redes"):
        add_subscriber(services.engine, email="ana@example.org", list_slug=slug, address_key=key,
                       language="es" if slug == "redes" else "en", confirmed=True,
                       consent_source="test")
    add_subscriber(services.engine, email="luc@example.org", list_slug="news", address_key=key,
                   language="fr", confirmed=True, consent_source="test")
    counts = {}
    sending = sender.sender_engine(services.settings.database_url, key)
    with sending.connect() as conn:
        rows = {r.slug: r for r in conn.execute(select(LISTS))}
    for slug, row in rows.items():
        counts[slug] = recipients.count_by_language(
            sending, row.id, ListLanguages.of(row), key, None
        )
    sending.dispose()
    assert counts == {"news": {"en": 1, "fr": 1}, "redes": {"es": 1}}


def test_a_lists_languages_are_codes_lowercased_once_each() -> None:
    assert parse_languages("en, FR,es,fr, pt-BR") == ["en", "fr", "es", "pt-br"]
    for bad in ("", "english", "e1"):
        with pytest.raises(ValidationError):
            parse_languages(bad)
