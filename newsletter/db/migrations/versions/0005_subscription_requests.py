"""A table of pending subscription requests

Revision ID: 0005
Revises: 0004

Until now the language and name a pending subscription asked for were read back, at
confirmation, from its latest "subscribe" audit event. They now have a table of their own, one
row per pending subscription, written when it is registered and deleted when it is confirmed
or left. Every pending subscription gets its row here, with what that latest "subscribe" event
asked for (nothing for people added by `subscribers add` or import, which had none), so a
confirmation link already sent confirms exactly as before.
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

import newsletter.db.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BATCH = 5000

# For each pending subscription: the latest "subscribe" event (what the form asked for) and the
# latest "import" event (where `subscribers add` or an import got the address), if any.
PENDING = sa.text("""
SELECT s.subscriber_id, s.list_id, s.created_at, asked.data, added.source
FROM subscriptions s
LEFT JOIN events asked ON asked.id = (
    SELECT max(e.id) FROM events e WHERE e.subscriber_id = s.subscriber_id
    AND e.list_id = s.list_id AND e.kind = 'subscribe')
LEFT JOIN events added ON added.id = (
    SELECT max(e.id) FROM events e WHERE e.subscriber_id = s.subscriber_id
    AND e.list_id = s.list_id AND e.kind = 'import')
WHERE s.status = 'pending'
ORDER BY s.id
""").columns(created_at=newsletter.db.models.UTCDateTime())


def _request(row: Any) -> dict[str, Any]:
    """The request row for one pending subscription."""
    data = row.data
    if isinstance(data, str):  # SQLite hands JSON back as text through a text() query
        data = json.loads(data)
    data = data or {}
    if row.data is not None:
        source = "form"
    else:
        source = (row.source or "")[:512]
    return {"subscriber_id": row.subscriber_id, "list_id": row.list_id,
            "language": data.get("language") or None, "name": data.get("name") or "",
            "source": source, "created_at": row.created_at}


def upgrade() -> None:
    table = op.create_table(
        "subscription_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=512), nullable=False),
        sa.Column("created_at", newsletter.db.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscriber_id", "list_id"),
    )
    result = op.get_bind().execute(PENDING)
    while rows := result.fetchmany(BATCH):
        op.bulk_insert(table, [_request(row) for row in rows])


def downgrade() -> None:
    op.drop_table("subscription_requests")
