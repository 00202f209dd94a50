"""One rule for names, whichever way they come in: the form, the preferences page, the CLI, import.

Before, the form refused a name over 200 characters while `subscribers add` and import cut it,
and the form dropped a line break ("AnaSilva") where the CLI made it a space ("Ana Silva").
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from newsletter.audience.importer import import_csv
from newsletter.audience.names import MAX_NAME, clean_name
from newsletter.audience.optin import OptIn, RequestMeta, subscribe
from newsletter.audience.preferences import update_preferences
from newsletter.audience.subscribers import add_subscriber
from newsletter.db.models import Subscriber
from newsletter.errors import ValidationError
from newsletter.web.mails import SystemMails
from tests.audience.conftest import write
from tests.conftest import akey

META = RequestMeta(ip="192.0.2.9", user_agent="test", source="form")
TOO_LONG = "N" * (MAX_NAME + 1)
PERSIAN = "مهدی\u200cزاده"  # the zero-width non-joiner is part of the spelling


def _stored_name(services, email: str) -> str | None:
    with services.engine.connect() as conn:
        return conn.scalar(select(Subscriber.name).where(Subscriber.email == email))


def _optin(services) -> OptIn:
    return OptIn.from_settings(services.settings, services.engine, SystemMails(services.settings))


def _add(services, email: str, name: str) -> None:
    add_subscriber(services.engine, email=email, list_slug="news", name=name,
                   address_key=akey(services))


def _form(services, email: str, name: str) -> None:
    subscribe(_optin(services), list_slug="news", email=email, name=name, meta=META)


def _import(services, tmp_path, email: str, name: str) -> list[str]:
    path = write(tmp_path, f'email,name\n{email},"{name}"\n')
    report = import_csv(services.engine, path=path, list_slug="news", address_key=akey(services))
    return [problem.reason for problem in report.rejected]


def test_the_rule():
    assert clean_name("  Ana\r\n  Silva\t") == "Ana Silva"
    assert clean_name("Ana\u202eavlis") == "Anaavlis"  # a right-to-left override is dropped
    assert clean_name(PERSIAN) == PERSIAN
    assert clean_name("Ana \u200b Silva\u200b") == "Ana Silva"  # zero-width spaces go
    assert clean_name("x" * MAX_NAME) == "x" * MAX_NAME
    with pytest.raises(ValidationError, match=f"longer than {MAX_NAME}"):
        clean_name(TOO_LONG)


@pytest.mark.parametrize("way", ["cli", "form", "import"])
def test_every_way_in_stores_the_same_name(services, news, tmp_path, way):
    email = f"{way}@example.org"
    raw = f"Ana\n Silva {PERSIAN}"
    if way == "cli":
        _add(services, email, raw)
    elif way == "form":
        _form(services, email, raw)
    else:
        assert _import(services, tmp_path, email, raw) == []
    assert _stored_name(services, email) == f"Ana Silva {PERSIAN}"


@pytest.mark.parametrize("way", ["cli", "form", "import"])
def test_every_way_in_refuses_a_name_too_long_and_stores_nothing(services, news, tmp_path, way):
    email = f"{way}@example.org"
    if way == "import":
        assert _import(services, tmp_path, email, TOO_LONG) == [
            f"name: longer than {MAX_NAME} characters"]
    else:
        with pytest.raises(ValidationError, match=f"longer than {MAX_NAME}"):
            (_add if way == "cli" else _form)(services, email, TOO_LONG)
    assert _stored_name(services, email) is None


def test_the_preferences_page_applies_the_same_rule(services, news):
    add_subscriber(services.engine, email="p@example.org", list_slug="news", name="Old",
                   address_key=akey(services), confirmed=True, consent_source="test")
    with services.engine.connect() as conn:
        sid = conn.scalar(select(Subscriber.id).where(Subscriber.email == "p@example.org"))
    ctx = _optin(services)
    with pytest.raises(ValidationError, match=f"longer than {MAX_NAME}"):
        update_preferences(ctx, subscriber_id=sid, list_id=news.id, name=TOO_LONG,
                           language="en", list_ids=[news.id], meta=META)
    assert _stored_name(services, "p@example.org") == "Old"
    update_preferences(ctx, subscriber_id=sid, list_id=news.id, name="Ana\nSilva",
                       language="en", list_ids=[news.id], meta=META)
    assert _stored_name(services, "p@example.org") == "Ana Silva"
