"""The editors' side of a statement: the queue of verified signatures, the decisions
(approve, reject), the CSV export, and what the public may see (approved and listed only)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, distinct, func, select, update

from newsletter.db.models import utcnow
from newsletter.db.tables import SIGNATURES, STATEMENTS
from newsletter.errors import NotFoundError, ValidationError
from newsletter.statements.signatures import fold

EXPORT_COLUMNS = ("id", "organisation", "country", "organisation_type", "contact_name",
                  "contact_email", "language", "listed", "status", "created_at", "verified_at",
                  "decided_at")
# What each decision may move a signature from.
# Rejecting an approved signature withdraws it from the public pages.
DECISIONS = {"approved": ("verified",),
             "rejected": ("pending_verification", "verified", "approved")}


@dataclass(frozen=True)
class Signatory:
    """What the public page shows of an approved signature: no contact, ever."""

    organisation: str
    country: str


def _statement_id(engine: Engine, slug: str) -> int:
    with engine.connect() as conn:
        found = conn.execute(select(STATEMENTS.c.id).where(STATEMENTS.c.slug == slug)).scalar()
    if found is None:
        raise NotFoundError(f"no signatures for statement {slug!r}")
    return int(found)


def signatures(engine: Engine, slug: str, statuses: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The statement's signatures (of these statuses, or all), oldest first: EXPORT_COLUMNS."""
    sid = _statement_id(engine, slug)
    query = select(*(SIGNATURES.c[name] for name in EXPORT_COLUMNS)).where(
        SIGNATURES.c.statement_id == sid).order_by(SIGNATURES.c.id)
    if statuses:
        query = query.where(SIGNATURES.c.status.in_(statuses))
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def decide(engine: Engine, slug: str, decision: str, ids: Iterable[int] | None,
           now: datetime | None = None) -> list[int]:
    """Approve or reject these signatures (None: every verified one); the ids changed.
    ValidationError names an id that is not the statement's or cannot take the decision."""
    sid = _statement_id(engine, slug)
    allowed = DECISIONS[decision]
    with engine.begin() as conn:
        query = select(SIGNATURES.c.id, SIGNATURES.c.status).where(
            SIGNATURES.c.statement_id == sid)
        statuses = {row.id: row.status for row in conn.execute(query)}
        wanted = [i for i, s in statuses.items() if s == "verified"] if ids is None else list(ids)
        for signature in wanted:
            if signature not in statuses:
                raise ValidationError(f"no signature {signature} on statement {slug!r}")
            if statuses[signature] not in allowed:
                raise ValidationError(f"signature {signature} is {statuses[signature]}: it "
                                      f"cannot be {decision}")
        if wanted:
            conn.execute(update(SIGNATURES).where(SIGNATURES.c.id.in_(wanted))
                         .values(status=decision, decided_at=now or utcnow()))
    return sorted(wanted)


def _organisation(conn: Any, sid: int, signature: int) -> tuple[str, str, str]:
    row = conn.execute(select(SIGNATURES.c.organisation, SIGNATURES.c.organisation_key,
                              SIGNATURES.c.status)
                       .where(SIGNATURES.c.id == signature, SIGNATURES.c.statement_id == sid)
                       ).first()
    if row is None:
        raise ValidationError(f"no signature {signature} on this statement")
    return row.organisation, row.organisation_key, row.status


def approved_spelling(engine: Engine, slug: str, signature: int) -> str | None:
    """The name of an approved organisation that this signature's differs from only in case,
    accents or spacing (the first approved spelling); None when there is none."""
    sid = _statement_id(engine, slug)
    with engine.connect() as conn:
        name, key, _status = _organisation(conn, sid, signature)
        found = conn.execute(
            select(SIGNATURES.c.organisation)
            .where(SIGNATURES.c.statement_id == sid, SIGNATURES.c.organisation_key == key,
                   SIGNATURES.c.status == "approved", SIGNATURES.c.id != signature)
            .order_by(SIGNATURES.c.decided_at, SIGNATURES.c.id)).scalar()
    return found if found is not None and found != name else None


def merge(engine: Engine, slug: str, signature: int, spelling: str) -> None:
    """Write this signature's organisation as `spelling`, the approved name it matches."""
    sid = _statement_id(engine, slug)
    with engine.begin() as conn:
        _name, key, _status = _organisation(conn, sid, signature)
        if fold(spelling) != key:
            raise ValidationError(f"{spelling!r} is not the same organisation's name")
        conn.execute(update(SIGNATURES).where(SIGNATURES.c.id == signature)
                     .values(organisation=spelling))


def keep_apart(engine: Engine, slug: str, signature: int) -> None:
    """Count this signature as an organisation of its own, though its name matches another's
    but for case, accents or spacing (the editors said they are two organisations)."""
    sid = _statement_id(engine, slug)
    with engine.begin() as conn:
        _name, key, _status = _organisation(conn, sid, signature)
        conn.execute(update(SIGNATURES).where(SIGNATURES.c.id == signature)
                     .values(organisation_key=f"{key}#{signature}"))


def export_csv(engine: Engine, slug: str) -> str:
    """Every signature of the statement as CSV for the editors (with the contacts)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in signatures(engine, slug):
        values = [row[name] for name in EXPORT_COLUMNS]
        writer.writerow(["" if v is None else v.isoformat() if isinstance(v, datetime) else v
                         for v in values])
    return out.getvalue()


def signatories(engine: Engine, slug: str) -> list[Signatory]:
    """The approved signatures that agreed to be listed, one per organisation (the first
    approved), sorted by name: all a public page may show."""
    query = (select(SIGNATURES.c.organisation, SIGNATURES.c.organisation_key,
                    SIGNATURES.c.country)
             .join(STATEMENTS, STATEMENTS.c.id == SIGNATURES.c.statement_id)
             .where(STATEMENTS.c.slug == slug, SIGNATURES.c.status == "approved",
                    SIGNATURES.c.listed.is_(True))
             .order_by(SIGNATURES.c.decided_at, SIGNATURES.c.id))
    seen: dict[str, Signatory] = {}
    with engine.connect() as conn:
        for name, key, country in conn.execute(query):
            seen.setdefault(key, Signatory(name, country))
    return sorted(seen.values(), key=lambda s: s.organisation.casefold())


def approved_count(engine: Engine, slug: str) -> int:
    """How many organisations the statement's approved signatures stand for (listed or not)."""
    query = (select(func.count(distinct(SIGNATURES.c.organisation_key)))
             .join(STATEMENTS, STATEMENTS.c.id == SIGNATURES.c.statement_id)
             .where(STATEMENTS.c.slug == slug, SIGNATURES.c.status == "approved"))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
