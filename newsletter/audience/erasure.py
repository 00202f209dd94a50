"""Erasure (GDPR art. 17): one function that removes a person and every copy of their address.

What goes, in one transaction:
- the subscriber row and, through the foreign keys, their subscriptions, pending requests and
  deliveries;
- their outbox mails (the recipient, and whole rendered mails with name and personal links);
- their bounce records;
- from their audit events: ip, user agent, source, consent text and data. The events stay as
  anonymous facts (kind, list, time), so list statistics still add up;
- the address wherever else it was written, in any case, percent-encoded (a referring URL in
  `events.source`) or JSON-escaped: the columns in SWEPT are searched and each occurrence
  becomes "[erased]" (the bounce reply in `suppressions.detail`, an unmatched bounce's
  diagnostic, another subscriber's attribute). Lists, issues and editions are the editors'
  texts, not records about people, and are left as they are.

What stays: a keyed hash of the address on the suppression list (reason "erased"), so no form,
import or send reaches it again.

On SQLite every connection runs with `secure_delete=ON` (db/engine.py), so deleted and updated
rows leave zeroes, not old bytes, in the file; after the erasure a checkpoint(TRUNCATE) copies
the WAL into the main file and empties it. On PostgreSQL the old row versions stay in the
table files until VACUUM reuses their space, and in the server's WAL: beyond what a client
of the database can reach.

`purge_pending` (newsletter maintenance) deletes subscriptions never confirmed in time with the
same steps, without suppressing: those people never consented, and may still sign up later.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus

import sqlalchemy as sa
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    Text,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from newsletter.audience.addresses import normalize_email
from newsletter.audience.subscribers import suppressed_hashes
from newsletter.db.engine import is_sqlite
from newsletter.db.models import utcnow
from newsletter.db.tables import (
    BOUNCES,
    DELIVERIES,
    EVENTS,
    OUTBOX,
    REQUESTS,
    SIGNATURES,
    SUBSCRIBERS,
    SUBSCRIPTIONS,
    SUPPRESSIONS,
)
from newsletter.delivery.headers import AddressError, ascii_address
from newsletter.errors import ValidationError
from newsletter.keyring import address_hash

# Where the address may be written down about someone else: other subscribers' names and
# attributes, audit events (a referring URL, an unmatched bounce's diagnostic), suppressions (a
# bounce reply), bounce records. The person's own outbox mails and deliveries are deleted whole,
# and nobody else's mail or delivery names them.
SWEPT = {
    "subscribers": ("name", "attributes"),
    "subscription_requests": ("name",),
    "events": ("user_agent", "source", "consent_text", "data"),
    "suppressions": ("detail",),
    "bounces": ("detail",),
}
# Characters that percent-encoding and JSON leave as they are.
_UNCHANGED = re.compile(r"[a-z0-9._~-]+")
ERASED = "[erased]"
# Characters that may stand next to an address inside another address: "xa@example.org" does
# not contain "a@example.org", and neither does "a@example.org.uk".
# "=", "?", "/" and "&" may start an address too, but far more often end a URL's key.
_BEFORE = r"(?<![A-Za-z0-9!#$%'*+^_`{|}~.-])"
_AFTER = r"(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
_BOUNCE_SOURCE = re.compile(r"bounce:[0-9a-f]+")


@dataclass(frozen=True)
class ErasureReport:
    """What an erasure (or a purge) removed; counts only, never the address."""

    subscribers: int = 0
    subscriptions: int = 0
    deliveries: int = 0
    outbox: int = 0
    bounce_records: int = 0
    events_anonymised: int = 0
    rows_scrubbed: int = 0
    suppressed: bool = False
    wal_emptied: bool | None = None  # SQLite only: False when a reader kept the WAL alive


def _wire_form(address: str) -> str:
    """The punycode form the sender and bounce reports use for an IDN domain."""
    try:
        return ascii_address(address)
    except AddressError:
        return address


def spellings(address: str) -> list[str]:
    """The address as it may be written: plain, percent-encoded, JSON-escaped (lower case).

    Both the stored form and the wire form of an internationalised domain count.
    """
    forms: set[str] = set()
    for form in {address, _wire_form(address)}:
        forms |= {form, quote(form, safe=""), quote_plus(form, safe=""), quote(form, safe="@"),
                  form.replace("@", "%40"), json.dumps(form)[1:-1]}
    return sorted({form.lower() for form in forms}, key=len, reverse=True)


def address_pattern(address: str) -> re.Pattern[str]:
    """Any spelling of the address, in any case, standing alone (not inside a longer one)."""
    alternatives = "|".join(re.escape(form) for form in spellings(address))
    return re.compile(f"{_BEFORE}(?:{alternatives}){_AFTER}", re.IGNORECASE)


def _scrub(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(ERASED, value)
    if isinstance(value, list):
        return [_scrub(item, pattern) for item in value]
    if isinstance(value, dict):
        return {_scrub(k, pattern): _scrub(v, pattern) for k, v in value.items()}
    return value


def _cores(address: str) -> list[str]:
    """Pieces found in every spelling: the longest run of the local part and of the domain
    made of characters that no encoding changes. Empty when a part has none."""
    local, _, domain = address.lower().rpartition("@")
    runs = [max(_UNCHANGED.findall(part), key=len, default="") for part in (local, domain)]
    return runs if all(runs) else []


def _filter(conn: Connection, table: Table, address: str) -> Any:
    """A coarse SQL test for rows that may hold the address; address_pattern then decides."""
    parts = [sa.func.coalesce(sa.cast(table.c[name], Text), "") for name in SWEPT[table.name]]
    row: Any = parts[0]
    for part in parts[1:]:
        row = row + " " + part
    # SQLite's LIKE ignores ASCII case by itself; PostgreSQL's needs ILIKE.
    like = row.like if is_sqlite(conn) else row.ilike
    tests = []
    for form in {address, _wire_form(address)}:  # an IDN domain has a second, punycode form
        cores = _cores(form)
        if cores:  # two LIKEs per row rather than one per spelling and column
            tests.append(and_(*(like(f"%{_escape(core)}%", escape="\\") for core in cores)))
        else:
            tests.extend(like(f"%{_escape(spelt)}%", escape="\\") for spelt in spellings(form))
    return or_(*tests)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def sweep(conn: Connection, address: str) -> int:
    """Replace every spelling of the address in the people tables; returns rows changed."""
    pattern = address_pattern(address)
    changed = 0
    for table in (SUBSCRIBERS, REQUESTS, EVENTS, SUPPRESSIONS, BOUNCES):
        names = SWEPT[table.name]
        query = select(table.c.id, *(table.c[n] for n in names)).where(
            _filter(conn, table, address))
        for row in conn.execute(query).mappings().all():
            values = {n: _scrub(row[n], pattern) for n in names}
            values = {k: v for k, v in values.items() if v != row[k]}
            if values:
                conn.execute(update(table).where(table.c.id == row["id"]).values(**values))
                changed += 1
    return changed


def forget_signers(conn: Connection, addresses: Iterable[str]) -> int:
    """Take the person's name and address off the statements they signed for an organisation;
    the organisation's signature stands. Returns the signatures changed."""
    g = SIGNATURES.c
    erased = sa.literal(ERASED + ":") + sa.cast(g.id, sa.String)  # keeps them unique
    return conn.execute(update(SIGNATURES).where(g.contact_email.in_(sorted(addresses)))
                        .values(contact_name="", contact_email=erased)).rowcount


def _count(conn: Connection, table: Table, where: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())


def remove_people(conn: Connection, ids: list[int], addresses: Iterable[str]) -> dict[str, int]:
    """Delete these subscribers with their mails and bounce records; anonymise their events."""
    addresses = sorted(set(addresses))
    e = EVENTS.c
    counts = {
        "subscriptions": _count(conn, SUBSCRIPTIONS,
                                SUBSCRIPTIONS.c.subscriber_id.in_(ids)),
        "deliveries": _count(conn, DELIVERIES, DELIVERIES.c.subscriber_id.in_(ids)),
        # Stored recipients are normalised addresses, so the index finds them all.
        "outbox": conn.execute(delete(OUTBOX).where(
            OUTBOX.c.recipient.in_(addresses))).rowcount if addresses else 0,
        "bounce_records": conn.execute(delete(BOUNCES).where(
            BOUNCES.c.subscriber_id.in_(ids))).rowcount,
        # A bounce event's source is a digest of the report, kept so a late copy of the same
        # report is still recognised as a duplicate; any other source may name the person.
        "events_anonymised": conn.execute(update(EVENTS).where(e.subscriber_id.in_(ids))
            .values(ip=None, user_agent=None, consent_text=None, data={},
                    source=case((e.source.like("bounce:%"), e.source), else_=None))).rowcount,
    }
    # Subscriptions and deliveries go with their subscriber (ON DELETE CASCADE).
    counts["subscribers"] = conn.execute(
        delete(SUBSCRIBERS).where(SUBSCRIBERS.c.id.in_(ids))).rowcount
    return counts


@contextmanager
def secure_transaction(engine: Engine) -> Iterator[tuple[Connection, dict[str, Any]]]:
    """A transaction whose freed bytes are zeroed, then a WAL emptied into the main file.

    Yields the connection and a dict that receives `wal_emptied` (None on PostgreSQL).
    """
    outcome: dict[str, Any] = {"wal_emptied": None}
    with engine.connect() as conn:
        sqlite = is_sqlite(conn)
        if sqlite:
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
            conn.commit()  # ends SQLAlchemy's autobegun transaction; the pragma stays
        with conn.begin():
            yield conn, outcome
        if sqlite:
            outcome["wal_emptied"] = checkpoint(conn)


def compact(engine: Engine) -> bool:
    """SQLite: rewrite the database file, then empty the WAL; whether the WAL was emptied.

    Rows deleted or overwritten before `secure_delete` was on (by an earlier version) may still
    sit in the file's free space; VACUUM writes a new file without it. It takes the database
    for as long as copying the file takes.
    """
    if not is_sqlite(engine):
        raise ValidationError(
            "--vacuum rewrites a SQLite file; on PostgreSQL the server's files are its owner's: "
            "run VACUUM FULL there"
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM")  # outside any transaction, as SQLite requires
        return checkpoint(conn)


def checkpoint(conn: Connection, tries: int = 20) -> bool:
    """Copy the WAL into the database file and truncate it; False if readers kept it busy."""
    for _ in range(tries):
        busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
        if busy is not None and busy[0] == 0:
            return True
        time.sleep(0.05)  # a reader's snapshot still needs the WAL: it ends in milliseconds
    return False


def erase(
    engine: Engine,
    *,
    address_key: str,
    email: str | None = None,
    subscriber_id: int | None = None,
    source: str = "cli",
) -> ErasureReport:
    """Erase a person (by address or subscriber id) and keep only the address's keyed hash.

    An address with no subscriber is still swept and suppressed: it may sit in bounce reports.
    """
    now = utcnow()
    s = SUBSCRIBERS.c
    with secure_transaction(engine) as (conn, outcome):
        if subscriber_id is not None:
            email = conn.scalar(select(s.email).where(s.id == subscriber_id))
            if email is None:
                return ErasureReport()
        address = normalize_email(email or "")
        people = conn.execute(
            select(s.id, s.email).where(func.lower(s.email) == address)).all()
        addresses = {address, *(row.email.lower() for row in people)}
        counts = remove_people(conn, [row.id for row in people], addresses)
        digest = address_hash(address, address_key)  # the one place erasure hashes an address
        fresh = not suppressed_hashes(conn, [digest])
        if fresh:
            conn.execute(insert(SUPPRESSIONS).values(
                email_hash=digest, reason="erased", created_at=now, detail=""))
        scrubbed = sweep(conn, address) + forget_signers(conn, addresses)
        conn.execute(insert(EVENTS).values(
            kind="erase", subscriber_id=None, created_at=now, source=source, data={}))
    return ErasureReport(**counts, rows_scrubbed=scrubbed, suppressed=fresh,
                         wal_emptied=outcome["wal_emptied"])


@dataclass(frozen=True)
class PurgeReport:
    """What `newsletter maintenance` did (or, in a dry run, would do)."""

    pending_days: int
    subscriptions: int
    subscribers: int
    dry_run: bool
    wal_emptied: bool | None = None


def purge_pending(
    engine: Engine, *, days: int, dry_run: bool = False, now: datetime | None = None
) -> PurgeReport:
    """Delete subscriptions still pending after `days`; a subscriber left with none goes too."""
    now = now or utcnow()
    c, s = SUBSCRIPTIONS.c, SUBSCRIBERS.c
    stale = and_(c.status == "pending", c.created_at < now - timedelta(days=days))
    with secure_transaction(engine) as (conn, outcome):
        rows = conn.execute(select(c.id, c.subscriber_id).where(stale)).all()
        sids = sorted({row.subscriber_id for row in rows})
        others = set(conn.scalars(select(c.subscriber_id).where(
            c.subscriber_id.in_(sids), c.id.not_in([row.id for row in rows]))))
        alone = [sid for sid in sids if sid not in others]
        if not dry_run and rows:
            people = conn.execute(select(s.id, s.email).where(s.id.in_(alone))).all()
            conn.execute(delete(SUBSCRIPTIONS).where(
                c.id.in_([row.id for row in rows])))
            # Their requests go too (the subscriber may stay, with other subscriptions).
            conn.execute(delete(REQUESTS).where(~sa.exists().where(
                c.subscriber_id == REQUESTS.c.subscriber_id, c.list_id == REQUESTS.c.list_id)))
            # Everything tied to them goes; no sweep for stray copies of each address, which
            # would scan the audit trail once per person (a consent nobody gave leaves few).
            remove_people(conn, alone, (row.email for row in people))
            conn.execute(insert(EVENTS).values(
                kind="purge", subscriber_id=None, created_at=now, source="maintenance",
                data={"pending_days": days, "subscriptions": len(rows),
                      "subscribers": len(alone)}))
    return PurgeReport(days, len(rows), len(alone), dry_run, outcome["wal_emptied"])
