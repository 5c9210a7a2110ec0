"""the console's operators, the accounts granted to them, and their sessions

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from patron.store.schema import Id, UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(254), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("disabled_at", UTCDateTime(), nullable=True),
        sa.Column("failed_signins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("last_signin_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "operator_accounts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("operator_id", Id, sa.ForeignKey("operators.id", ondelete="CASCADE"), nullable=False),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.UniqueConstraint("operator_id", "account_id", name="uq_operator_accounts"),
    )
    op.create_index("ix_operator_accounts_account", "operator_accounts", ["account_id"])
    op.create_table(
        "operator_sessions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("operator_id", Id, sa.ForeignKey("operators.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_operator_sessions_operator", "operator_sessions", ["operator_id"])


def downgrade() -> None:
    op.drop_table("operator_sessions")
    op.drop_table("operator_accounts")
    op.drop_table("operators")
