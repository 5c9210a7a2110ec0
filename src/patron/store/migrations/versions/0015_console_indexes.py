"""the console dashboard's charts: records pushed per hour, orders and revenue per day (read from the
index alone), profiles created per day, sessions started per day

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

ORDERS_PLACED = ["account_id", "placed_at", "currency", "base_totals"]


def upgrade() -> None:
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_import_batches_account_received",
            ["account_id", "received_at", "record_type", "accepted", "rejected"],
        )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_account_placed")
        batch_op.create_index("ix_orders_account_placed", [*ORDERS_PLACED, "counted", "revenue"])
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.create_index("ix_profiles_account_created", ["account_id", "created_at"])
    with op.batch_alter_table("tracking_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_tracking_sessions_account_started", ["account_id", "started_at"])


def downgrade() -> None:
    with op.batch_alter_table("tracking_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_tracking_sessions_account_started")
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_index("ix_profiles_account_created")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_account_placed")
        batch_op.create_index("ix_orders_account_placed", ORDERS_PLACED)
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_import_batches_account_received")
