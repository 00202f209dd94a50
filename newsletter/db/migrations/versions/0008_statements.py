"""Sign-on statements and their signatures

Revision ID: 0008
Revises: 0007

Two new tables: `statements` (one row per statements/<slug>/ folder that was signed, with its
dates and cap as last read) and `signatures` (organisation, country, type, contact, language,
consent to be listed, and the moderation status pending_verification -> verified -> approved
| rejected). Nothing existing changes, so every row of the other tables is carried as it is.
"""

import sqlalchemy as sa
from alembic import op

import newsletter.db.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = newsletter.db.models.UTCDateTime
    op.create_table(
        "statements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=128), nullable=False),
        sa.Column("opens_at", when(), nullable=True),
        sa.Column("closes_at", when(), nullable=True),
        sa.Column("cap", sa.Integer(), nullable=True),
        sa.Column("created_at", when(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    op.create_table(
        "signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("statement_id", sa.Integer(), nullable=False),
        sa.Column("organisation", sa.String(length=300), nullable=False),
        sa.Column("organisation_key", sa.String(length=300), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("organisation_type", sa.String(length=32), nullable=False),
        sa.Column("contact_name", sa.String(length=200), nullable=False),
        sa.Column("contact_email", sa.String(length=320), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("listed", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("created_at", when(), nullable=False),
        sa.Column("verified_at", when(), nullable=True),
        sa.Column("decided_at", when(), nullable=True),
        sa.ForeignKeyConstraint(["statement_id"], ["statements.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("statement_id", "organisation_key", "contact_email"),
    )
    op.create_index("ix_signatures_statement_status", "signatures",
                    ["statement_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_signatures_statement_status", "signatures")
    op.drop_table("signatures")
    op.drop_table("statements")
