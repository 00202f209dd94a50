"""Long-running workers and scheduled issues

Revision ID: 0009
Revises: 0008

A new table `workers` (one row per running `newsletter worker`: its name, host, pid, start,
last heartbeat, the issue it is on, messages sent and its current rate) and a nullable column
`issues.scheduled_at` (UTC), set only for an issue in the `scheduled` state. Nothing existing
changes, so every row of the other tables is carried as it is.
"""

import sqlalchemy as sa
from alembic import op

import newsletter.db.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = newsletter.db.models.UTCDateTime
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", when(), nullable=False),
        sa.Column("heartbeat_at", when(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issues.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.add_column("issues", sa.Column("scheduled_at", when(), nullable=True))


def downgrade() -> None:
    # Not a batch (on SQLite that copies the table, and dropping the old `issues` would
    # cascade to its editions): both engines drop a column in place (SQLite since 3.35).
    op.execute("ALTER TABLE issues DROP COLUMN scheduled_at")
    op.drop_table("workers")
