"""The import's driver-level writes (db/bulk.py) store exactly what SQLAlchemy stores."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import String, cast, insert, select

from newsletter.audience.importer import import_csv
from newsletter.audience.listedits import add_list
from newsletter.audience.subscribers import iter_subscribers
from newsletter.db.models import Event, Subscription, utcnow
from newsletter.db.tables import SUBSCRIBERS

ATTRIBUTES = {"organisation": "Réseau \"Sahel\" \u2028 Ouest", "city": "Zürich"}


def stored_text(conn, email: str) -> tuple[str, str]:
    """(attributes, created_at) as the database holds them, as text."""
    s = SUBSCRIBERS.c
    row = conn.execute(select(cast(s.attributes, String), cast(s.created_at, String))
                       .where(s.email == email)).one()
    return row[0], row[1]


def layout(stamp: str) -> str:
    """A timestamp's text with its digits and fraction masked: its layout alone."""
    return re.sub(r"\d", "9", re.sub(r"\.\d+", "", stamp))


def test_imported_rows_read_back_like_rows_sqlalchemy_wrote(services, tmp_path):
    engine = services.engine
    add_list(engine, slug="news", name="News", languages=["en", "fr"], default_language="en")
    path = tmp_path / "subs.csv"
    path.write_text('email,name,language,organisation,city\n'
                    'amina@example.org,Amina,fr,"Réseau ""Sahel"" \u2028 Ouest",Zürich\n',
                    encoding="utf-8")
    before = utcnow()
    import_csv(engine, path=path, list_slug="news", address_key=services.keyring.address_key,
               confirmed=True, consent_source="signed form")
    with engine.begin() as conn:
        conn.execute(insert(SUBSCRIBERS).values(
            email="ref@example.org", name="Ref", language="fr", attributes=ATTRIBUTES,
            created_at=utcnow(), updated_at=utcnow()))
        imported, reference = stored_text(conn, "amina@example.org"), stored_text(
            conn, "ref@example.org")
        subscription = conn.execute(select(Subscription)).one()
        event = conn.execute(select(Event)).one()
    assert imported[0] == reference[0]  # the same JSON text
    # The same timestamp layout (separator, fraction, zone); PostgreSQL's text drops a
    # fraction's trailing zeros, and a time on the whole second has no fraction at all.
    assert layout(imported[1]) == layout(reference[1])
    (row,) = iter_subscribers(engine, list_slug="news")
    assert (row.email, row.name, row.language, row.status) == ("amina@example.org", "Amina",
                                                               "fr", "confirmed")
    assert row.attributes == ATTRIBUTES
    for moment in (datetime.fromisoformat(row.created_at), subscription.confirmed_at,
                   subscription.created_at, event.created_at):
        assert moment.tzinfo == UTC
        assert before - timedelta(seconds=1) <= moment <= utcnow()
    assert (event.kind, event.source, event.data) == ("import-confirmed", "signed form",
                                                      {"status": "confirmed"})
