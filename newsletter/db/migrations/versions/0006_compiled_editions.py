"""Each edition keeps its compiled form, so send workers no longer read the workspace

Revision ID: 0006
Revises: 0005

`editions.compiled` holds the compiled edition as JSON (subject, HTML and text shells, slots),
written when the issue is enqueued. A migration cannot compile Markdown, so rows enqueued
before it stay NULL, and a send resumed on them compiles from the workspace as before.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.add_column(sa.Column("compiled", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.drop_column("compiled")
