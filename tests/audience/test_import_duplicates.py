"""Duplicates inside one small file (one import batch): the last row's values win."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from newsletter.audience.importer import import_csv
from newsletter.audience.listedits import add_list
from newsletter.db.models import Subscriber
from tests.conftest import akey

FILE = (
    "email,name,language,organisation,city\n"
    "amina@example.org,Amina D.,en,Old Org,Dakar\n"
    "other@example.org,Other,en,,\n"
    "AMINA@example.org,Amina Diallo,fr,Réseau Sahel,\n"
)


def test_duplicate_rows_in_one_batch_merge_to_the_last_row(services, tmp_path: Path) -> None:
    add_list(services.engine, slug="news", name="News", languages=["en", "fr", "es"],
             default_language="en")
    path = tmp_path / "subs.csv"
    path.write_text(FILE, encoding="utf-8")
    report = import_csv(services.engine, path=path, list_slug="news", address_key=akey(services))
    assert report.accepted == 2 and report.duplicates_in_file == 1
    with services.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Subscriber)) == 2
        row = conn.execute(select(Subscriber.name, Subscriber.language, Subscriber.attributes)
                           .where(Subscriber.email == "amina@example.org")).one()
    assert row.name == "Amina Diallo" and row.language == "fr"
    # A later empty cell does not erase what an earlier row gave.
    assert row.attributes == {"organisation": "Réseau Sahel", "city": "Dakar"}
