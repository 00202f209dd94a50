"""An issue's enqueue under way

Revision ID: 0011
Revises: 0010

A new column `issues.enqueuing`, true while a send still adds the issue's deliveries in
chunks (delivery/dispatch.py) while its first messages already go out; whoever settles the
last delivery sets the issue sent only once it is false. Every issue before this revision
was enqueued in one transaction, so its enqueue is complete: the column starts false for
all of them, and every other row is carried as it is.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("issues", sa.Column("enqueuing", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    # Not a batch (on SQLite that copies the table, and dropping the old `issues` would
    # cascade to its editions): both engines drop a column in place (SQLite since 3.35).
    op.execute("ALTER TABLE issues DROP COLUMN enqueuing")
