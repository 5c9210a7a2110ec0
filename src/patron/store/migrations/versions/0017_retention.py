"""retention: applied queue rows by their applied time, the queue's requests per hour once pruned,
and a merge's received time beside its outcome

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from patron.store.schema import Id, UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.create_index("ix_import_batches_applied", ["applied_at"])
    with op.batch_alter_table("merge_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("received_at", UTCDateTime(), nullable=True))
    op.create_table(
        "import_hours",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("record_type", sa.String(16), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("last_received_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("account_id", "hour", "record_type", name="uq_import_hours_account_hour_type"),
    )


def downgrade() -> None:
    op.drop_table("import_hours")
    with op.batch_alter_table("merge_jobs", schema=None) as batch_op:
        batch_op.drop_column("received_at")
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_import_batches_applied")
