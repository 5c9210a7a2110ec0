"""profiles keep their stats, country, consent and dates in typed columns beside the document, the
dates indexed (segments compare them without reading JSON and find who crossed a relative line), and
an account's profiles are indexed by id (a segment's build reads them in steps)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from patron.store import json_field

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

COUNTS = ("orders", "orders_attempted", "total_items", "visits", "email_clicks")
DATES = ("acquired", "first_purchase", "last_purchase", "first_seen", "last_seen", "last_email_click")
#: column -> (the document's path, its JSON kind)
FROM_DOCUMENT = {
    **{name: (f"stats.{name}", "number") for name in (*COUNTS, "revenue", "aov")},
    "country_id": ("country_id", "text"),
    "marketing_optin": ("marketing_optin", "bool"),
    "sms_status": ("channels.sms.status", "text"),
    **{name: (f"dates.{name}", "text") for name in DATES},
}


def upgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        for name in COUNTS:
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("revenue", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("aov", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("country_id", sa.String(2), nullable=True))
        batch_op.add_column(sa.Column("marketing_optin", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("sms_status", sa.String(16), nullable=True))
        for name in DATES:
            batch_op.add_column(sa.Column(name, sa.String(40), nullable=True))
    conn = op.get_bind()
    data = sa.column("data", sa.Text)
    table = sa.table("profiles", data, *(sa.column(name) for name in FROM_DOCUMENT))
    values: dict[str, sa.ColumnElement[object]] = {}
    for name, (path, kind) in FROM_DOCUMENT.items():
        value = json_field(conn, data, path, kind)
        values[name] = sa.cast(value, sa.BigInteger) if name in COUNTS else value
    conn.execute(sa.update(table).values(**values))
    for name in DATES:
        op.create_index(f"ix_profiles_account_{name}", "profiles", ["account_id", name], unique=False)
    op.create_index("ix_profiles_account_id", "profiles", ["account_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_profiles_account_id", table_name="profiles")
    for name in DATES:
        op.drop_index(f"ix_profiles_account_{name}", table_name="profiles")
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        for name in (*COUNTS, "revenue", "aov", "country_id", "marketing_optin", "sms_status", *DATES):
            batch_op.drop_column(name)
