"""Lists' names and descriptions per language

Revision ID: 0004
Revises: 0003

`names` and `descriptions` hold {language: text} when lists.toml gives them per language;
`name` and `description` keep the default language's text, so existing lists keep theirs and
a language missing from the tables falls back to them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lists") as batch:
        batch.add_column(sa.Column("names", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("descriptions", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lists") as batch:
        batch.drop_column("descriptions")
        batch.drop_column("names")
