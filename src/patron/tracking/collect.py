"""The collector's one write: a decoded beacon joins the import queue, so that the worker applies
it in order with the account's pushes (``events.py``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection, select

from patron.ingest.queue import enqueue_operation
from patron.store.schema import accounts
from patron.tracking.events import TRACK, Hit
from patron.tracking.wire import Beacon


def account_id(conn: Connection, account_hash: str) -> int | None:
    found: int | None = conn.execute(select(accounts.c.id).where(accounts.c.hash == account_hash)).scalar()
    return found


def queue(conn: Connection, account: int, beacon: Beacon, at: datetime) -> None:
    """Keep the event (never refused for a backlog: the per-visitor and per-address limits bound
    what one browser can send)."""
    enqueue_operation(conn, account, None, str(uuid.uuid4()), TRACK, Hit(beacon, at), at)
