"""Liveness and readiness, as plain functions of the store."""

from __future__ import annotations

from sqlalchemy import Connection, insert, update

from patron.accounts import now
from patron.store import Store
from patron.store.schema import heartbeat


def _beat(conn: Connection) -> None:
    if conn.execute(update(heartbeat).where(heartbeat.c.id == 1).values(at=now())).rowcount == 0:
        conn.execute(insert(heartbeat).values(id=1, at=now()))


async def accepts_writes(store: Store) -> None:
    """Commit a real write through the store; raises ``StoreUnavailable`` when it cannot."""
    await store.write(_beat)
