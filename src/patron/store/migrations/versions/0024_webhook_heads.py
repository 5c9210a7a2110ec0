"""a claim reads each enabled endpoint's first due events through an index: events behind an earlier
undelivered one of their profile wait (``waiting``) instead of being read and passed over

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_webhook_events_endpoint_due", "webhook_events", ["endpoint", "status", "next_attempt_at"]
    )
    op.create_index(
        "ix_webhook_events_endpoint_leased",
        "webhook_events",
        ["endpoint", "leased_until"],
        sqlite_where=sa.text("leased_until IS NOT NULL"),
        postgresql_where=sa.text("leased_until IS NOT NULL"),
    )
    op.execute(
        "UPDATE webhook_events SET status = 'waiting' WHERE status = 'pending' AND profile IS NOT NULL"
        " AND EXISTS (SELECT 1 FROM webhook_events AS earlier"
        " WHERE earlier.endpoint = webhook_events.endpoint AND earlier.profile = webhook_events.profile"
        " AND earlier.status = 'pending'"
        " AND earlier.id < webhook_events.id)"
    )


def downgrade() -> None:
    op.execute("UPDATE webhook_events SET status = 'pending' WHERE status = 'waiting'")
    op.drop_index("ix_webhook_events_endpoint_leased", "webhook_events")
    op.drop_index("ix_webhook_events_endpoint_due", "webhook_events")
