"""The relays as every worker sees them

Revision ID: 0010
Revises: 0009

Two new tables for several SMTP relays shared by every worker and host (delivery/relayview.py):
`relay_state` (a relay taken out: until when and why) and `relay_hours` (messages counted
against a relay's hourly limit, per UTC hour). Nothing existing changes, so every row of the
other tables is carried as it is.
"""

import sqlalchemy as sa
from alembic import op

import newsletter.db.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = newsletter.db.models.UTCDateTime
    op.create_table(
        "relay_state",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("out_until", when(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", when(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "relay_hours",
        sa.Column("relay", sa.String(length=255), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("relay", "hour"),
    )


def downgrade() -> None:
    op.drop_table("relay_hours")
    op.drop_table("relay_state")
