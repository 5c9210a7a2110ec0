"""a segment's entries and exits are indexed by the segment and their time, as a list's are: its feed
is read in time order on the index, ``since`` a range of it (by row id, a ``since`` read every entry
and exit of the segment before it)

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

_INDEX = "ix_segment_changes_account_segment"


def upgrade() -> None:
    op.drop_index(_INDEX, "segment_changes")
    op.create_index(_INDEX, "segment_changes", ["account_id", "segment_id", "created_at"])


def downgrade() -> None:
    op.drop_index(_INDEX, "segment_changes")
    op.create_index(_INDEX, "segment_changes", ["account_id", "segment_id", "id"])
