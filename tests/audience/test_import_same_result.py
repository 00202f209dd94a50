"""An import of a file of edge cases gives exactly the report and database the importer gave
before it was made faster (tests/audience/import_edge_cases.json, written by that version).

Every line a user reads (counts, warnings, rejected rows with their lines) and every stored
value is compared: a speed-up must change none of them, on either engine, on a first import
of a new list, a re-import of the same file and an import that changes some subscribers, with
batches so small that duplicates fall in different batches.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from newsletter.audience.importer import Importer
from newsletter.audience.lists import get_list
from newsletter.audience.subscribers import add_subscriber, remove_subscriber
from newsletter.db.tables import EVENTS, REQUESTS, SUBSCRIBERS, SUBSCRIPTIONS

EXPECTED = Path(__file__).with_name("import_edge_cases.json")
LONG = "x" * 1500

EDGE_CASES = (
    b"\xef\xbb\xbfEmail,Name,Language,Organisation\r\n"
    b"amina@example.org,Amina Diallo,fr,Sahel\r\n"
    b"AMINA@Example.ORG,Amina D.,,\r\n"
    b"not-an-address,Bad Row,en,X\r\n"
    b"a@b,No Dot,en,\r\n"
    + "jörg@example.org,Jörg,de,\r\n".encode()
    + "jose@bücher.de,José Bücher,es,Libros\r\n".encode()
    + b"jose@xn--bcher-kva.de,Jose Again,Spanish,\r\n"
    b"carlos@example.org,Carlos M\xc3\xa9ndez,de,Red\r\n"
    b"pat@example.org,Pat,Fran\xc3\xa7ais,\r\n"
    b"quebec@example.org,Qu\xc3\xa9bec,fr_CA,\r\n"
    b",,,\r\n"
    b"\r\n"
    b"   ,  ,  , \r\n"
    b"nul@example.org,Nul\x00Byte,en,\r\n"
    b"bell@example.org,Bell\x07,en,\r\n"
    b"wide@example.org,Wide,en,Org,extra\r\n"
    b"short@example.org\r\n"
    b"spaces@example.org,  Many   Spaces  ,en,\r\n"
    b"eve@example.org,=HYPERLINK(1),en,\r\n"
    b"plus@example.org,Plus,en,+SUM(1)\r\n"
    b"dash@example.org,-5,en,\r\n"
    + f"long@example.org,Long,en,{LONG}\r\n".encode()
    + f"longname@example.org,{'N' * 201},en,\r\n".encode()
    + b"li@example.org,\"Li\r\nWei\",en,\"Asia, Forum\"\r\n"
    b"bad-utf8@example.org,\xff\xfe,en,\r\n"
    b"\"quoted local\"@example.org,Quoted,en,\r\n"
    b"  trim@example.org  ,Trim,EN,\r\n"
    b"cr@example.org,Carriage\rReturn,en,\r\n"
    b"pending@example.org,Pending Person,en,\r\n"
    b"gone@example.org,Gone Person,es,\r\n"
    b"Amina@example.org,,fr,Sahel Two\r\n"
    + b"huge@example.org," + b"h" * 70_000 + b",en,\r\n"
    + b"after-huge@example.org,After,en,\r\n"
    b"bad\"quote@example.org,Quote,en,\r\n"
    b"last@example.org,Last,es,\"never closed\r\n"
    b"really-last@example.org,Really Last,en,\r\n"
)

# The same file with some subscribers changed (name, language, attribute) and one added.
CHANGED = (EDGE_CASES.replace(b"Carlos M\xc3\xa9ndez,de", b"Carlos M\xc3\xa9ndez,es")
           .replace(b"Pending Person,en", b"Pending Person,fr")
           .replace(b"Pat,Fran", b"Patricia,Fran")
           + b"new@example.org,New,en,Fresh\r\n")


def state(services: Any) -> dict[str, Any]:
    """What a user can see of the list: subscribers in creation order, their subscriptions,
    pending requests and audit events (ids and times left out: they differ between runs)."""
    with services.engine.connect() as conn:
        s, c, r, e = SUBSCRIBERS.c, SUBSCRIPTIONS.c, REQUESTS.c, EVENTS.c
        subscribers = conn.execute(select(s.id, s.email, s.name, s.language, s.attributes)
                                   .order_by(s.id)).all()
        order = {row.id: i for i, row in enumerate(subscribers)}
        subscriptions = conn.execute(select(c.subscriber_id, c.status,
                                            c.confirmed_at.is_not(None))).all()
        requests = conn.execute(select(r.subscriber_id, r.source, r.name, r.language)).all()
        events = conn.execute(select(e.kind, e.subscriber_id, e.source, e.data)
                              .order_by(e.id)).all()
    return {
        "subscribers": [[row.email, row.name, row.language, row.attributes]
                        for row in subscribers],
        "subscriptions": sorted([order[sid], status, confirmed]
                                for sid, status, confirmed in subscriptions),
        "requests": sorted([order[sid], source, name, language]
                           for sid, source, name, language in requests),
        "events": [[kind, order.get(sid), source, data] for kind, sid, source, data in events
                   if kind.startswith("import")],
    }


def run_import(services: Any, path: Path, batch_size: int, **options: Any) -> dict[str, Any]:
    importer = Importer(services.engine, get_list(services.engine, "news"),
                        services.keyring.address_key, batch_size=batch_size, **options)
    with path.open("rb") as stream:
        report = importer.run(stream, f"import:{path.name}").as_dict()
    return {"report": report, "database": state(services)}


def test_edge_cases_import_as_before(services, news, tmp_path):
    edge, changed = tmp_path / "edge.csv", tmp_path / "changed.csv"
    edge.write_bytes(EDGE_CASES)
    changed.write_bytes(CHANGED)
    key = services.keyring.address_key
    add_subscriber(services.engine, email="pending@example.org", list_slug="news",
                   address_key=key, name="Pending Person")
    add_subscriber(services.engine, email="gone@example.org", list_slug="news",
                   address_key=key, name="Gone Person", language="es", confirmed=True,
                   consent_source="form")
    remove_subscriber(services.engine, email="gone@example.org", address_key=key,
                      list_slug="news")
    runs = {
        "first, confirmed, batches of 3": run_import(services, edge, 3, confirmed=True,
                                                     consent_source="bench"),
        "again, unchanged, one batch": run_import(services, edge, 2000),
        "again, batches of 2": run_import(services, edge, 2),
        "changed, batches of 4": run_import(services, changed, 4),
        "changed, dry run": run_import(services, changed, 2000, dry_run=True),
        "changed, strict": run_import(services, changed, 5, strict=True),
    }
    runs = json.loads(json.dumps(runs))  # tuples as lists, as the expected file has them
    if os.environ.get("WRITE_IMPORT_EXPECTED"):  # how the expected file was made
        EXPECTED.write_text(json.dumps(runs, indent=1, ensure_ascii=False) + "\n")
    expected = json.loads(EXPECTED.read_text())
    for name, run in runs.items():
        assert run["report"] == expected[name]["report"], name
        assert run["database"] == expected[name]["database"], name
