"""Signing a statement: the request, the verification by email, and the moderation.

A signature moves pending_verification -> verified (its contact followed the mailed link) ->
approved | rejected (an editor decided, `newsletter statement review`); this module is its
only writer. Like the subscribe form, what the signer is shown never depends on the outcome
(new, duplicate, throttled), and each request counts towards the per-IP limit of the forms.
The optional newsletter opt-in goes through the ordinary double opt-in (audience/optin.py).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select, update

from newsletter.audience.addresses import normalize_email
from newsletter.audience.audit import RequestMeta, record_event
from newsletter.audience.language import FALL_BACK, ListLanguages
from newsletter.audience.names import MAX_NAME, clean_name
from newsletter.audience.optin import FORM_KINDS, OptIn, check_ip_limit, find_list, subscribe_in
from newsletter.db.models import utcnow
from newsletter.db.tables import SIGNATURES, STATEMENTS
from newsletter.errors import NewsletterError, ValidationError
from newsletter.i18n import LANGUAGES
from newsletter.links import signature_url
from newsletter.outbox import count_recent, enqueue
from newsletter.statements.countries import is_country
from newsletter.statements.source import Statement
from newsletter.tokens import TokenError

ORGANISATION_TYPES = ("ngo", "network", "union", "faith", "academic", "community", "other")
SIGN_KINDS = (*FORM_KINDS, "sign")  # the audit events counted by the per-IP limit
MAIL_KIND = "verify-signature"
ADDRESS_WINDOW = timedelta(days=1)


class StatementClosed(NewsletterError):
    """The statement does not take signatures (not open yet, closed, or full)."""


@dataclass(frozen=True)
class SignRequest:
    """What the form collected."""

    organisation: str
    country: str
    organisation_type: str
    contact_name: str
    contact_email: str
    language: str
    listed: bool
    newsletter: bool = False


@dataclass(frozen=True)
class Verified:
    """What following a verification link did."""

    outcome: str  # verified | already
    slug: str
    language: str


def fold(organisation: str) -> str:
    """The organisation's name without case, accents or extra spaces, to find duplicates."""
    decomposed = unicodedata.normalize("NFKD", organisation.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.split())


def checked(request: SignRequest) -> SignRequest:
    """The request cleaned; ValidationError (with `field`) for a value that cannot be used."""

    def refuse(field: str, reason: str) -> ValidationError:
        error = ValidationError(f"{field}: {reason}")
        error.field = field  # type: ignore[attr-defined]
        return error

    def name(field: str, value: str) -> str:
        try:
            return clean_name(value)
        except ValidationError:
            raise refuse(field, f"longer than {MAX_NAME} characters") from None

    organisation = name("organisation", request.organisation)
    contact = name("contact_name", request.contact_name)
    if not organisation:
        raise refuse("organisation", "empty")
    if not contact:
        raise refuse("contact_name", "empty")
    if not is_country(request.country):
        raise refuse("country", "not an ISO 3166 country code")
    if request.organisation_type not in ORGANISATION_TYPES:
        raise refuse("organisation_type", "unknown")
    if request.language not in LANGUAGES:
        raise refuse("language", "not offered")
    email = normalize_email(request.contact_email)
    return SignRequest(organisation, request.country, request.organisation_type, contact,
                       email, request.language, request.listed, request.newsletter)


def statement_id(conn: Connection, statement: Statement) -> int:
    """The statement's row, created or brought in line with its source."""
    values = {"opens_at": statement.opens_at, "closes_at": statement.closes_at,
              "cap": statement.cap}
    found = conn.execute(select(STATEMENTS.c.id).where(STATEMENTS.c.slug == statement.slug)
                         ).scalar()
    if found is not None:
        conn.execute(update(STATEMENTS).where(STATEMENTS.c.id == found).values(**values))
        return int(found)
    result = conn.execute(STATEMENTS.insert().values(slug=statement.slug, created_at=utcnow(),
                                                     **values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def count_approved(conn: Connection, sid: int) -> int:
    """How many signatures of the statement are approved (what a cap counts)."""
    query = select(func.count()).where(SIGNATURES.c.statement_id == sid,
                                       SIGNATURES.c.status == "approved")
    return int(conn.execute(query).scalar_one())


def check_open(conn: Connection, statement: Statement, sid: int, now: datetime) -> None:
    """StatementClosed unless the statement takes signatures now."""
    if not statement.is_open(now):
        raise StatementClosed(f"statement {statement.slug!r} is not open for signatures")
    if statement.cap is not None and count_approved(conn, sid) >= statement.cap:
        raise StatementClosed(f"statement {statement.slug!r} has all its signatures")


def sign(ctx: OptIn, statement: Statement, request: SignRequest, meta: RequestMeta,
         now: datetime | None = None) -> str:
    """Record a signature and mail its verification link; the outcome is for logs and tests:
    pending | duplicate | throttled."""
    now = now or utcnow()
    request = checked(request)
    with ctx.engine.begin() as conn:
        check_ip_limit(conn, SIGN_KINDS, meta.ip, ctx.max_per_ip, now)
        sid = statement_id(conn, statement)
        check_open(conn, statement, sid, now)
        outcome = _record(ctx, conn, sid, request, now)
        record_event(conn, "sign", meta, now, None, None,
                     {"statement": statement.slug, "outcome": outcome})
        if request.newsletter and statement.list_slug:
            mlist = find_list(conn, statement.list_slug)
            language = ListLanguages.of(mlist).accept(request.language, FALL_BACK)
            subscribe_in(ctx, conn, mlist, request.contact_email, request.contact_name,
                         language, meta, now)
    return outcome


def _record(ctx: OptIn, conn: Connection, sid: int, request: SignRequest, now: datetime) -> str:
    key = fold(request.organisation)
    found = conn.execute(select(SIGNATURES).where(
        SIGNATURES.c.statement_id == sid, SIGNATURES.c.organisation_key == key,
        SIGNATURES.c.contact_email == request.contact_email)).mappings().first()
    if found is not None and found["status"] != "pending_verification":
        return "duplicate"
    if found is None:
        result = conn.execute(SIGNATURES.insert().values(
            statement_id=sid, organisation=request.organisation, organisation_key=key,
            country=request.country, organisation_type=request.organisation_type,
            contact_name=request.contact_name, contact_email=request.contact_email,
            language=request.language, listed=request.listed, status="pending_verification",
            created_at=now))
        signature = int(result.inserted_primary_key[0])  # type: ignore[index]
    else:
        signature = int(found["id"])
    since = now - ADDRESS_WINDOW
    if count_recent(conn, MAIL_KIND, request.contact_email, since) >= ctx.max_per_address:
        return "throttled"
    message = ctx.mailer.signature_verification(
        email=request.contact_email, name=request.contact_name, language=request.language,
        organisation=request.organisation,
        url=signature_url(ctx.base_url, ctx.signer, signature), days=ctx.confirm_days)
    enqueue(conn, MAIL_KIND, request.contact_email, ctx.mailer.sender, message)
    return "pending" if found is None else "duplicate"


def read_token(ctx: OptIn, token: str) -> int:
    """The signature id of a genuine, fresh verification link; TokenError otherwise."""
    data = ctx.signer.verify("sign", token, max_age=ctx.confirm_days * 86400)
    if len(data.values) != 1:
        raise TokenError("malformed token")
    return data.values[0]


def verify(ctx: OptIn, token: str, now: datetime | None = None) -> Verified:
    """Mark the signature verified (once; a second use changes nothing and says so)."""
    now = now or utcnow()
    signature = read_token(ctx, token)
    with ctx.engine.begin() as conn:
        row = conn.execute(
            select(SIGNATURES.c.status, SIGNATURES.c.language, STATEMENTS.c.slug)
            .join(STATEMENTS, STATEMENTS.c.id == SIGNATURES.c.statement_id)
            .where(SIGNATURES.c.id == signature)).first()
        if row is None:
            raise TokenError("this signature no longer exists")
        outcome = "already"
        if row.status == "pending_verification":
            conn.execute(update(SIGNATURES).where(SIGNATURES.c.id == signature)
                         .values(status="verified", verified_at=now))
            outcome = "verified"
    return Verified(outcome, row.slug, row.language)



def signer_address(ctx: OptIn, token: str) -> str:
    """The contact address of a genuine verification link's signature (whose owner may ask for
    their data with it); TokenError when the link is broken or the signature is gone."""
    signature = read_token(ctx, token)
    with ctx.engine.connect() as conn:
        found = conn.execute(select(SIGNATURES.c.contact_email)
                             .where(SIGNATURES.c.id == signature)).scalar()
    if found is None or "@" not in found:  # deleted, or its contact erased
        raise TokenError("this signature no longer exists")
    return str(found)
