"""verified email links: allowed domains, clicks

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from patron.store.schema import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_domains", sa.JSON(), server_default="[]", nullable=False))

    op.create_table(
        "email_clicks",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("profile", sa.String(length=32), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("clicked_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_email_clicks_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_clicks")),
    )
    with op.batch_alter_table("email_clicks", schema=None) as batch_op:
        batch_op.create_index("ix_email_clicks_account_profile", ["account_id", "profile"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("email_clicks", schema=None) as batch_op:
        batch_op.drop_index("ix_email_clicks_account_profile")

    op.drop_table("email_clicks")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("link_domains")
