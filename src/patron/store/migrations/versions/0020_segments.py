"""segments: dynamic segments, their members and their entries and exits

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from patron.store.schema import Id, UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def _account() -> sa.Column[int]:
    return sa.Column("account_id", Id, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        _account(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("relative", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cursor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("size", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_segments_account", "segments", ["account_id", "id"])
    op.create_table(
        "segment_members",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        _account(),
        sa.Column("segment_id", sa.BigInteger(), nullable=False),
        sa.Column("profile", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("account_id", "segment_id", "profile", name="uq_segment_members_account_key"),
    )
    op.create_index("ix_segment_members_account_profile", "segment_members", ["account_id", "profile"])
    op.create_table(
        "segment_changes",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        _account(),
        sa.Column("segment_id", sa.BigInteger(), nullable=False),
        sa.Column("profile", sa.String(32), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_segment_changes_account_segment", "segment_changes", ["account_id", "segment_id", "id"]
    )
    op.create_index("ix_segment_changes_account_profile", "segment_changes", ["account_id", "profile"])


def downgrade() -> None:
    op.drop_table("segment_changes")
    op.drop_table("segment_members")
    op.drop_table("segments")
