"""entities numbered in their account, so that a page at any depth is a seek

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None
TABLES = ("contacts", "orders", "products", "custom_events")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        # the rows stored so far, numbered in creation order within their account
        op.execute(
            f"UPDATE {table} SET seq = numbered.n FROM (SELECT id, ROW_NUMBER() OVER"  # noqa: S608
            f" (PARTITION BY account_id ORDER BY id) AS n FROM {table}) AS numbered"
            f" WHERE {table}.id = numbered.id"
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"ix_{table}_account_seq", ["account_id", "seq"], unique=True)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_account_seq")
            batch_op.drop_column("seq")
