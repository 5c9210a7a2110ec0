"""on-site tracking

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from patron.store.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_sources",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.String(length=512), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("cid", sa.String(length=64), nullable=False),
        sa.Column("first_touch", sa.Text(), nullable=True),
        sa.Column("last_touch", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_order_sources_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_sources")),
        sa.UniqueConstraint("account_id", "order_id", name="uq_order_sources_account_order"),
    )
    op.create_table(
        "tracking_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("cid", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("page_type", sa.String(length=200), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_tracking_events_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_events")),
    )
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tracking_events_account_session", ["account_id", "cid", "session_id", "id"], unique=False
        )

    op.create_table(
        "tracking_sessions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("cid", sa.String(length=64), nullable=False),
        sa.Column("profile", sa.String(length=32), nullable=True),
        sa.Column("site", sa.String(length=200), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("page_views", sa.Integer(), nullable=False),
        sa.Column("product_views", sa.Integer(), nullable=False),
        sa.Column("basket_adds", sa.Integer(), nullable=False),
        sa.Column("basket", sa.Text(), nullable=True),
        sa.Column("checkout_stage", sa.Text(), nullable=True),
        sa.Column("transactions", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_tracking_sessions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_sessions")),
        sa.UniqueConstraint("account_id", "cid", "session_id", name="uq_tracking_sessions_account_session"),
    )
    with op.batch_alter_table("tracking_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_tracking_sessions_account_profile", ["account_id", "profile"], unique=False)
        batch_op.create_index("ix_tracking_sessions_open", ["ended_at", "last_at"], unique=False)

    op.create_table(
        "visitors",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("cid", sa.String(length=64), nullable=False),
        sa.Column("profile", sa.String(length=32), nullable=True),
        sa.Column("first_source", sa.Text(), nullable=True),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_visitors_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visitors")),
        sa.UniqueConstraint("account_id", "cid", name="uq_visitors_account_cid"),
    )
    with op.batch_alter_table("visitors", schema=None) as batch_op:
        batch_op.create_index("ix_visitors_account_profile", ["account_id", "profile"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("visitors", schema=None) as batch_op:
        batch_op.drop_index("ix_visitors_account_profile")

    op.drop_table("visitors")
    with op.batch_alter_table("tracking_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_tracking_sessions_open")
        batch_op.drop_index("ix_tracking_sessions_account_profile")

    op.drop_table("tracking_sessions")
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.drop_index("ix_tracking_events_account_session")

    op.drop_table("tracking_events")
    op.drop_table("order_sources")
