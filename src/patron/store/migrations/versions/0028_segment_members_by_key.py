"""a segment's members are keyed by the account, the segment and the profile, without a row id: a page
of members is found in the key's order (profile ids) instead of sorting the segment by row id, and on
SQLite the rows are the key's b-tree (an entry writes two b-trees, not a table and two indexes)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from patron.store.schema import Id, UTCDateTime

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

_KEY = ["account_id", "segment_id", "profile"]
_INDEX = "ix_segment_members_account_profile"
_UNIQUE = "uq_segment_members_account_key"
_COLUMNS = ["account_id", "segment_id", "profile", "created_at"]


def _create_members(name: str, *, with_id: bool) -> sa.Table:
    """The members' table as it is with or without its row id, made as ``name``."""
    columns: list[sa.Column[object] | sa.Constraint] = [
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("segment_id", sa.BigInteger(), nullable=False),
        sa.Column("profile", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    ]
    if with_id:
        columns.insert(0, sa.Column("id", Id, primary_key=True, autoincrement=True))
        columns.append(sa.UniqueConstraint(*_KEY, name=_UNIQUE))
    else:
        columns.append(sa.PrimaryKeyConstraint(*_KEY, name="pk_segment_members"))
    made = op.create_table(name, *columns, sqlite_with_rowid=with_id)
    assert made is not None
    return made


def _rebuild_sqlite(with_id: bool) -> None:
    """SQLite cannot change a table's key: a new table, the rows copied (in the order they entered),
    the old one dropped."""
    conn = op.get_bind()
    new = _create_members("segment_members_new", with_id=with_id)
    old = sa.table("segment_members", *(sa.column(name) for name in _COLUMNS))
    ordered = sa.select(old).order_by(old.c.created_at, old.c.account_id, old.c.segment_id, old.c.profile)
    conn.execute(sa.insert(new).from_select(_COLUMNS, ordered))
    op.drop_index(_INDEX, "segment_members")
    op.drop_table("segment_members")
    op.rename_table("segment_members_new", "segment_members")
    op.create_index(_INDEX, "segment_members", ["account_id", "profile", "segment_id"])


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(with_id=False)
        return
    op.drop_constraint(_UNIQUE, "segment_members", type_="unique")
    op.drop_column("segment_members", "id")  # and its primary key
    op.create_primary_key("pk_segment_members", "segment_members", _KEY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(with_id=True)
        return
    op.drop_constraint("pk_segment_members", "segment_members", type_="primary")
    op.add_column("segment_members", sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False))
    op.create_primary_key("pk_segment_members", "segment_members", ["id"])
    op.create_unique_constraint(_UNIQUE, "segment_members", _KEY)
