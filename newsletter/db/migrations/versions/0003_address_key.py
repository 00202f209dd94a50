"""The keyring table and its address key, which hashes suppressed addresses

Revision ID: 0003
Revises: 0002

Until now suppressions were hashed with the link secret key, so rotating that key switched
suppression off. A database that already holds suppressions keeps their hashes valid by taking
the current secret key as its address key (the caller passes it as the `secret_key` attribute);
any other database gets a random key.
"""

import secrets

import sqlalchemy as sa
from alembic import context, op

from newsletter.keyring import ADDRESS_KEY, KeyringError

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _address_key() -> str:
    """The current secret key when suppressions exist (their hashes use it), else a new key."""
    held = op.get_bind().execute(sa.text("SELECT 1 FROM suppressions LIMIT 1")).first()
    if held is None:
        return secrets.token_hex(32)
    secret = str(context.config.attributes.get("secret_key") or "")
    if not secret:
        raise KeyringError(
            "this database has suppressed addresses hashed with the secret key: set "
            "NEWSLETTER_SECRET_KEY or [newsletter] secret_key to the current key and run "
            "`newsletter db upgrade` again")
    return secret


def upgrade() -> None:
    # Decide before any DDL: SQLite commits CREATE TABLE at once, so a refusal after it would
    # leave a half-done upgrade behind.
    key = _address_key()
    table = op.create_table(
        "keyring",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.bulk_insert(table, [{"name": ADDRESS_KEY, "value": key}])


def downgrade() -> None:
    op.drop_table("keyring")
