"""the worker's reads of a few profiles' rows find them through an index, whatever else the account
holds: list and segment members by profile through an index holding the list or segment too (with
the profile alone, SQLite preferred the unique index, which covers the query, and read every member
of the account); the profiles merged into one through an index of ``merged_into``

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

#: table: (index, the column the index gains)
MEMBERS = {
    "list_members": ("ix_list_members_account_profile", "list_id"),
    "segment_members": ("ix_segment_members_account_profile", "segment_id"),
}


def upgrade() -> None:
    for table, (index, column) in MEMBERS.items():
        op.drop_index(index, table)
        op.create_index(index, table, ["account_id", "profile", column])
    merged = sa.text("merged_into IS NOT NULL")
    op.create_index(
        "ix_profiles_account_merged_into",
        "profiles",
        ["account_id", "merged_into"],
        sqlite_where=merged,
        postgresql_where=merged,
    )


def downgrade() -> None:
    op.drop_index("ix_profiles_account_merged_into", "profiles")
    for table, (index, _) in MEMBERS.items():
        op.drop_index(index, table)
        op.create_index(index, table, ["account_id", "profile"])
