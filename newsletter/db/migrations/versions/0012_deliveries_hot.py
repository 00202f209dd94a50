"""Room in the deliveries' pages for their updates, and sent rows out of the claim index
(PostgreSQL; nothing changes on SQLite)

Revision ID: 0012
Revises: 0011

A send updates each delivery three times: the claim (`worker`, `lease_until`), the intent
(`status` = sending) and the outcome (`status` = sent, ...). PostgreSQL writes an update
"HOT", with no new entry in any index, only when it changes no indexed column and the new
version fits in the same page. Before this revision almost none were (2,171 of 150,000 in a
50k send): the enqueue fills the pages to the brim, so even the claim, which changes no
indexed column, had to put its versions in other pages, and every version of every row got an
entry in all three indexes.

- `fillfactor = 40` on deliveries: a new row leaves 60 % of its page free. The claim rewrites
  every row of a page in one statement, so the page must hold a new version of each beside
  the old: a queued row takes about 76 bytes, a leased one 116 to 150 (the worker's name is up
  to 64 characters), 76 / (76 + 116) is about 0.4. The later updates of the row find the
  claim's dead versions pruned and land in the same page too. The setting applies to pages
  filled from now on: the rows of issues sent before stay where they are (they are never
  updated again, only deleted by the roll-up), so the table is not rewritten (VACUUM FULL
  would lock it for nothing). Right after a send the table takes no more room than before
  (bench/pg_wal_bench.py: 205 bytes per row against 224), as the old pages filled with the
  versions that did not fit.
- `ix_deliveries_claim` keeps only rows not `sent`: a row's outcome adds no entry to it, and
  the index holds the rows a send still has to do with (and the failures, skips and unknowns
  that reports look up by status) instead of every delivery ever made. Every query of
  deliveries by status but `sent` implies the predicate, so they use it as before. `status`
  stays a key of it, so the intent and the outcome are still not HOT; the claim is.

Every row is carried as it is. Downgrade puts the full index and the default fillfactor back.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = ["issue_id", "status", "next_attempt_at"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE deliveries SET (fillfactor = 40)")
    op.drop_index("ix_deliveries_claim", table_name="deliveries")
    op.create_index("ix_deliveries_claim", "deliveries", COLUMNS,
                    postgresql_where=sa.text("status <> 'sent'"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_deliveries_claim", table_name="deliveries")
    op.create_index("ix_deliveries_claim", "deliveries", COLUMNS)
    op.execute("ALTER TABLE deliveries RESET (fillfactor)")
