"""the console's reads: records pushed per hour, profiles created per day, sessions started per day;
a request's push errors; a profile's messages

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_import_batches_account_received",
            ["account_id", "received_at", "record_type", "accepted", "rejected"],
        )
    with op.batch_alter_table("push_errors", schema=None) as batch_op:
        batch_op.create_index("ix_push_errors_account_request", ["account_id", "request_id"])
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_account_profile", ["account_id", "profile", "id"])
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.create_index("ix_profiles_account_created", ["account_id", "created_at"])
    with op.batch_alter_table("tracking_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_tracking_sessions_account_started", ["account_id", "started_at"])


def downgrade() -> None:
    with op.batch_alter_table("tracking_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_tracking_sessions_account_started")
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_index("ix_profiles_account_created")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_account_profile")
    with op.batch_alter_table("push_errors", schema=None) as batch_op:
        batch_op.drop_index("ix_push_errors_account_request")
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_import_batches_account_received")
