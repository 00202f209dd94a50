"""The Core tables, named once: domain code writes `SUBSCRIBERS.c.email`, never its own alias.

They are the ORM models' tables (db/models.py defines the columns); Core statements on them are
what the hot paths use, so they are given here with the `Table` type mypy needs.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from newsletter.db.models import (
    BounceRecord,
    Delivery,
    Edition,
    Event,
    Issue,
    KeyringEntry,
    MailingList,
    OutboxMessage,
    RelayHourRow,
    RelayStateRow,
    Signature,
    Statement,
    Subscriber,
    Subscription,
    SubscriptionRequest,
    Suppression,
    WorkerRow,
)

LISTS = cast(Table, MailingList.__table__)
SUBSCRIBERS = cast(Table, Subscriber.__table__)
SUBSCRIPTIONS = cast(Table, Subscription.__table__)
REQUESTS = cast(Table, SubscriptionRequest.__table__)
EVENTS = cast(Table, Event.__table__)
KEYRING = cast(Table, KeyringEntry.__table__)
SUPPRESSIONS = cast(Table, Suppression.__table__)
ISSUES = cast(Table, Issue.__table__)
EDITIONS = cast(Table, Edition.__table__)
DELIVERIES = cast(Table, Delivery.__table__)
OUTBOX = cast(Table, OutboxMessage.__table__)
BOUNCES = cast(Table, BounceRecord.__table__)
STATEMENTS = cast(Table, Statement.__table__)
SIGNATURES = cast(Table, Signature.__table__)
WORKERS = cast(Table, WorkerRow.__table__)
RELAY_STATE = cast(Table, RelayStateRow.__table__)
RELAY_HOURS = cast(Table, RelayHourRow.__table__)
