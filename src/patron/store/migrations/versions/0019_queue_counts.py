"""an account's queued-record count spread over slots (queue_counts), so that one account's concurrent
pushes do not wait for one row

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from patron.store.schema import Id

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_counts",
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("slot", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("records", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO queue_counts (account_id, slot, records)"
        " SELECT id, 0, queued_records FROM accounts WHERE queued_records <> 0"
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("queued_records")


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queued_records", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE accounts SET queued_records ="
        " (SELECT COALESCE(SUM(records), 0) FROM queue_counts WHERE queue_counts.account_id = accounts.id)"
    )
    op.drop_table("queue_counts")
