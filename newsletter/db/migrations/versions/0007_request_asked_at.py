"""Each pending request remembers when its confirmation mail was queued

Revision ID: 0007
Revises: 0006

`subscribers invite` asked the pending people with no "invite", "subscribe" or "confirm" event
on the list, reading the audit trail back as state. `subscription_requests.asked_at` now says
it: set whenever a confirmation mail is queued for the request, NULL while nobody asked. It is
filled here from those same events (the latest one's time), and a pending subscription that has
such an event but no request row gets an empty one, so an upgraded database asks nobody twice.
"""

import sqlalchemy as sa
from alembic import op

import newsletter.db.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ASKED = "e.kind IN ('invite', 'subscribe', 'confirm')"
LAST_ASKED = f"""(SELECT max(e.created_at) FROM events e
    WHERE e.subscriber_id = {{t}}.subscriber_id AND e.list_id = {{t}}.list_id AND {ASKED})"""

FILL = sa.text(f"""UPDATE subscription_requests
    SET asked_at = {LAST_ASKED.format(t="subscription_requests")}""")

ADD_MISSING = sa.text(f"""
INSERT INTO subscription_requests (subscriber_id, list_id, language, name, source, created_at,
                                   asked_at)
SELECT s.subscriber_id, s.list_id, NULL, '', '', s.created_at, {LAST_ASKED.format(t="s")}
FROM subscriptions s
WHERE s.status = 'pending'
AND NOT EXISTS (SELECT 1 FROM subscription_requests r
                WHERE r.subscriber_id = s.subscriber_id AND r.list_id = s.list_id)
AND EXISTS (SELECT 1 FROM events e
            WHERE e.subscriber_id = s.subscriber_id AND e.list_id = s.list_id AND {ASKED})
""")


def upgrade() -> None:
    with op.batch_alter_table("subscription_requests") as batch:
        batch.add_column(
            sa.Column("asked_at", newsletter.db.models.UTCDateTime(), nullable=True))
    op.execute(FILL)
    op.execute(ADD_MISSING)


def downgrade() -> None:
    with op.batch_alter_table("subscription_requests") as batch:
        batch.drop_column("asked_at")
