"""push pipeline: import queue, push errors, entities

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from patron.store.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.add_column(sa.Column("queue_limit", sa.Integer(), nullable=False, server_default="50000"))
        batch_op.add_column(sa.Column("queued_records", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "contacts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.String(length=512), nullable=False),
        sa.Column("collection", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("customer_id", sa.String(length=512), nullable=True),
        sa.Column("phone_number", sa.String(length=16), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_contacts_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("account_id", "collection", "contact_id", name="uq_contacts_account_key"),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index("ix_contacts_account_customer", ["account_id", "customer_id"], unique=False)
        batch_op.create_index("ix_contacts_account_email", ["account_id", "email"], unique=False)
        batch_op.create_index("ix_contacts_account_updated", ["account_id", "updated_at", "id"], unique=False)

    op.create_table(
        "custom_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=512), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("identity_email", sa.String(length=254), nullable=True),
        sa.Column("identity_account_id", sa.String(length=512), nullable=True),
        sa.Column("profile_id", sa.String(length=512), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_custom_events_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_events")),
        sa.UniqueConstraint("account_id", "event_id", name="uq_custom_events_account_key"),
    )
    with op.batch_alter_table("custom_events", schema=None) as batch_op:
        batch_op.create_index("ix_custom_events_account_type", ["account_id", "event_type"], unique=False)
        batch_op.create_index(
            "ix_custom_events_account_updated", ["account_id", "updated_at", "id"], unique=False
        )

    op.create_table(
        "import_batches",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("record_type", sa.String(length=16), nullable=False),
        sa.Column("records", sa.LargeBinary(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("applied", sa.Integer(), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_import_batches_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_batches")),
        sa.UniqueConstraint("request_id", name=op.f("uq_import_batches_request_id")),
    )
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.create_index("ix_import_batches_account_status", ["account_id", "status"], unique=False)
        batch_op.create_index("ix_import_batches_status_id", ["status", "id"], unique=False)

    op.create_table(
        "orders",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.String(length=512), nullable=False),
        sa.Column("customer_id", sa.String(length=512), nullable=True),
        sa.Column("customer_email", sa.String(length=254), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_orders_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("account_id", "order_id", name="uq_orders_account_key"),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_account_updated", ["account_id", "updated_at", "id"], unique=False)

    op.create_table(
        "products",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.String(length=512), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=True),
        sa.Column("is_variant", sa.Boolean(), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_products_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("account_id", "product_id", name="uq_products_account_key"),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index("ix_products_account_updated", ["account_id", "updated_at", "id"], unique=False)

    op.create_table(
        "push_errors",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("record_type", sa.String(length=16), nullable=False),
        sa.Column("record_index", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=512), nullable=True),
        sa.Column("error_path", sa.Text(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_push_errors_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_errors")),
    )
    with op.batch_alter_table("push_errors", schema=None) as batch_op:
        batch_op.create_index("ix_push_errors_account_id_id", ["account_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.drop_column("queued_records")
        batch_op.drop_column("queue_limit")
    with op.batch_alter_table("push_errors", schema=None) as batch_op:
        batch_op.drop_index("ix_push_errors_account_id_id")

    op.drop_table("push_errors")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index("ix_products_account_updated")

    op.drop_table("products")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_account_updated")

    op.drop_table("orders")
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_import_batches_status_id")
        batch_op.drop_index("ix_import_batches_account_status")

    op.drop_table("import_batches")
    with op.batch_alter_table("custom_events", schema=None) as batch_op:
        batch_op.drop_index("ix_custom_events_account_updated")
        batch_op.drop_index("ix_custom_events_account_type")

    op.drop_table("custom_events")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_account_updated")
        batch_op.drop_index("ix_contacts_account_email")
        batch_op.drop_index("ix_contacts_account_customer")

    op.drop_table("contacts")
