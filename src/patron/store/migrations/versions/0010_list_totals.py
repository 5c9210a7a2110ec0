"""lists keep their size and their members' totals; a page of lists is an indexed seek

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import json
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from patron.store.schema import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lists", schema=None) as batch_op:
        batch_op.add_column(sa.Column("size", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("total_orders", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("total_revenue", sa.Float(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("stats_at", UTCDateTime(), nullable=True))
        batch_op.create_index("ix_lists_account_archived", ["account_id", "archived", "id"], unique=False)
    # the lists so far: the sums of their live members' profile documents
    conn = op.get_bind()
    totals: dict[tuple[int, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for account_id, data in conn.execute(
        # (the LIKE only narrows the rows: the JSON decides)
        sa.text(
            "SELECT account_id, data FROM profiles"
            """ WHERE merged_into IS NULL AND data LIKE '%"lists":[{%'"""
        )
    ):
        doc = json.loads(data)
        stats = doc.get("stats") or {}
        for membership in doc.get("lists") or []:
            total = totals[account_id, membership["id"]]
            total[0] += 1
            total[1] += stats.get("orders", 0)
            total[2] += stats.get("revenue", 0.0)
    for (account_id, list_id), (size, orders, revenue) in totals.items():
        conn.execute(
            sa.text(
                "UPDATE lists SET size = :size, total_orders = :orders, total_revenue = :revenue"
                " WHERE account_id = :account AND list_id = :list"
            ),
            {"size": size, "orders": orders, "revenue": revenue, "account": account_id, "list": list_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("lists", schema=None) as batch_op:
        batch_op.drop_index("ix_lists_account_archived")
        batch_op.drop_column("stats_at")
        batch_op.drop_column("total_revenue")
        batch_op.drop_column("total_orders")
        batch_op.drop_column("size")
