"""the integration check's indexes: each record's defects kept beside it, orders' currency and dates

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None
ENTITIES = {"contact": "contacts", "order": "orders", "product": "products"}
STEP = 1000


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    for record_type, entity in ENTITIES.items():
        name = f"{record_type}_flags"
        op.create_table(
            name,
            sa.Column("id", _id(), primary_key=True, autoincrement=True),
            sa.Column("account_id", _id(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
            sa.Column("row_id", _id(), sa.ForeignKey(f"{entity}.id", ondelete="CASCADE"), nullable=False),
            sa.Column("rule", sa.String(64), nullable=False),
            sa.Column("ref", sa.String(512), nullable=True),
            sa.Column("value", sa.Text(), nullable=True),
        )
        op.create_index(f"ix_{name}_account_rule", name, ["account_id", "rule", "row_id"])
        op.create_index(f"ix_{name}_row", name, ["row_id"])
        op.create_index(
            f"ix_{name}_account_ref",
            name,
            ["account_id", "ref"],
            sqlite_where=sa.text("ref IS NOT NULL"),
            postgresql_where=sa.text("ref IS NOT NULL"),
        )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("currency", sa.String(3), nullable=True))
        batch_op.add_column(sa.Column("base_totals", sa.Boolean(), server_default="0", nullable=False))
    _backfill(op.get_bind())
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_orders_account_placed",
            [
                "account_id",
                "placed_at",
                "currency",
                "base_totals",
                "counted",
                "revenue",
            ],
        )
        batch_op.create_index("ix_orders_account_customer", ["account_id", "customer_id", "customer_email"])
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_account_email")
        batch_op.create_index("ix_contacts_account_email", ["account_id", "email", "customer_id"])


def _backfill(conn: sa.Connection) -> None:
    """The records stored so far: orders' currency columns, and every record's defects."""
    from patron.model import defects

    orders = sa.table("orders", sa.column("id"), sa.column("currency"), sa.column("base_totals"))
    for record_type, entity in ENTITIES.items():
        last = 0
        while True:
            rows = conn.execute(
                sa.text(f"SELECT id, account_id, data FROM {entity} WHERE id > :last ORDER BY id LIMIT :n"),  # noqa: S608
                {"last": last, "n": STEP},
            ).all()
            if not rows:
                break
            last = rows[-1].id
            by_account: dict[int, list[tuple[int, dict[str, Any]]]] = {}
            for row in rows:
                doc = json.loads(row.data)
                by_account.setdefault(row.account_id, []).append(
                    (row.id, doc if isinstance(doc, dict) else {})
                )
            for account_id, docs in by_account.items():
                defects.refresh(conn, record_type, account_id, docs)
                if record_type == "order":
                    conn.execute(
                        sa.update(orders).where(orders.c.id == sa.bindparam("_id")),
                        [
                            {"_id": i, "currency": defects.currency(d), "base_totals": defects.base_totals(d)}
                            for i, d in docs
                        ],
                    )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_account_customer")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_account_email")
        batch_op.create_index("ix_contacts_account_email", ["account_id", "email"])
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_account_placed")
        batch_op.drop_column("base_totals")
        batch_op.drop_column("currency")
    for record_type in ENTITIES:
        op.drop_table(f"{record_type}_flags")
