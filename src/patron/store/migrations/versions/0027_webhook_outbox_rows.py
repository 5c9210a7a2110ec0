"""a row of the webhooks' outbox holds the events one unit of work emitted together (of one account and
time), their data not yet made into bodies: a round writes one row for its events instead of one
each; the events already waiting become rows of one event

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from patron.store.schema import UTCDateTime

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

#: Rows rewritten at a time.
_STEP = 1000
_EACH = ("event_id", "type", "profile")


def _dumps(value: object) -> str:
    """JSON as the outbox writes it (compact, UTF-8): a body made again is the one written."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def upgrade() -> None:
    op.add_column("webhook_outbox", sa.Column("events", sa.Integer(), nullable=False, server_default="1"))
    old = sa.table("webhook_outbox", *(sa.column(name) for name in ("id", *_EACH, "payload")))
    conn, after = op.get_bind(), 0
    while rows := conn.execute(sa.select(old).where(old.c.id > after).order_by(old.c.id).limit(_STEP)).all():
        for row in rows:
            # [[event id, type, profile, data]]: the body's data, its type and time given apart
            event = [row.event_id, row.type, row.profile, json.loads(row.payload)["data"]]
            conn.execute(sa.update(old).where(old.c.id == row.id).values(payload=_dumps([event])))
        after = rows[-1].id
    op.drop_index("ix_webhook_outbox_account_profile", "webhook_outbox")
    with op.batch_alter_table("webhook_outbox") as batch:
        for name in _EACH:
            batch.drop_column(name)


def downgrade() -> None:
    """Back to a row for each event, when each row holds one (rows of several are not split)."""
    with op.batch_alter_table("webhook_outbox") as batch:
        for name, size in (("event_id", 40), ("type", 40), ("profile", 32)):
            batch.add_column(sa.Column(name, sa.String(size), nullable=True))
    table = sa.table(
        "webhook_outbox",
        *(sa.column(name) for name in ("id", *_EACH, "payload")),
        sa.column("created_at", UTCDateTime()),
    )
    conn = op.get_bind()
    for row in conn.execute(sa.select(table.c.id, table.c.payload, table.c.created_at)).all():
        ((event_id, kind, profile, data),) = json.loads(row.payload)
        body = {"type": kind, "timestamp": row.created_at.isoformat(), "data": data}
        conn.execute(
            sa.update(table)
            .where(table.c.id == row.id)
            .values(event_id=event_id, type=kind, profile=profile, payload=_dumps(body))
        )
    op.create_index("ix_webhook_outbox_account_profile", "webhook_outbox", ["account_id", "profile"])
    op.drop_column("webhook_outbox", "events")
