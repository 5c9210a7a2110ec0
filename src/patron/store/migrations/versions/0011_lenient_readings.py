"""strict accounts; push errors also list the lenient readings, as warnings with their kind

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("strict", sa.Boolean(), server_default="0", nullable=False))
    with op.batch_alter_table("push_errors", schema=None) as batch_op:
        batch_op.alter_column("record_index", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(
            sa.Column("severity", sa.String(length=8), server_default="error", nullable=False)
        )
        batch_op.add_column(sa.Column("kind", sa.String(length=32), nullable=True))


def downgrade() -> None:
    # the warnings go: the feed was of rejected records only (and some warnings have no index)
    op.execute("DELETE FROM push_errors WHERE severity = 'warning'")
    with op.batch_alter_table("push_errors", schema=None) as batch_op:
        batch_op.drop_column("kind")
        batch_op.drop_column("severity")
        batch_op.alter_column("record_index", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("strict")
