"""the console's reads: a product's variants (products.parent_id) and an account's outbox, by index

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.String(512), nullable=True))
    # the products stored so far: their parent_id, when it is a string or a number
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE products SET parent_id = data::jsonb ->> 'parent_id'"
            " WHERE jsonb_typeof(data::jsonb -> 'parent_id') IN ('string', 'number')"
        )
    else:
        op.execute(
            "UPDATE products SET parent_id = CAST(json_extract(data, '$.parent_id') AS TEXT)"
            " WHERE json_type(data, '$.parent_id') IN ('text', 'integer')"
        )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index("ix_products_account_parent", ["account_id", "parent_id", "product_id"])
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_account_id", ["account_id", "id"])


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_account_id")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index("ix_products_account_parent")
        batch_op.drop_column("parent_id")
