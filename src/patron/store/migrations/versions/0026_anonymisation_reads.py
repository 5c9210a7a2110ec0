"""an anonymisation finds the person's rows by key through indexes: the messages sent to their
addresses by recipient, and their lists' entries and exits by profile, instead of reading every
message and every list change of the account

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

#: index: (table, its columns)
INDEXES = {
    "ix_messages_account_recipient": ("messages", ["account_id", "recipient"]),
    "ix_list_changes_account_profile": ("list_changes", ["account_id", "profile"]),
}


def upgrade() -> None:
    for index, (table, columns) in INDEXES.items():
        op.create_index(index, table, columns)


def downgrade() -> None:
    for index, (table, _) in INDEXES.items():
        op.drop_index(index, table)
