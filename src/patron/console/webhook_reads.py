"""What the console's webhooks pages read: an endpoint's pending events (counted up to a cap) and its
delivery attempts newest first (a seek on ``(endpoint, id)``), each page bounded."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec
from sqlalchemy import Connection, func, select

from patron.console.pages_reads import PAGE
from patron.store.schema import webhook_attempts, webhook_endpoints, webhook_events
from patron.webhooks import endpoints, outbox

#: The most pending events counted for an endpoint (the page says "at least" past it).
MOST_COUNTED: Final = 10_000


class Endpoint(msgspec.Struct):
    endpoint: endpoints.Endpoint
    #: Its events waiting to be delivered, counted up to :data:`MOST_COUNTED`.
    pending: int


class Attempt(msgspec.Struct):
    row: int
    event_id: str
    type: str
    event_status: str
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None


def _pending(conn: Connection, row_id: int) -> int:
    e = webhook_events.c
    waiting = (
        select(e.id)
        .where(e.endpoint == row_id, e.status.in_(outbox.UNFINISHED))
        .limit(MOST_COUNTED)
        .subquery()
    )
    return int(conn.execute(select(func.count()).select_from(waiting)).scalar_one())


def _row_id(conn: Connection, account_id: int, endpoint_id: str) -> int | None:
    w = webhook_endpoints.c
    found = conn.execute(
        select(w.id).where(w.account_id == account_id, w.endpoint_id == endpoint_id)
    ).scalar()
    return None if found is None else int(found)


def hooks(conn: Connection, account_id: int) -> list[Endpoint]:
    """The account's endpoints (at most ``requests.MAX_ENDPOINTS``), each with its pending events."""
    w = webhook_endpoints.c
    rows = dict(conn.execute(select(w.endpoint_id, w.id).where(w.account_id == account_id)).all())
    return [Endpoint(found, _pending(conn, rows[found.id])) for found in endpoints.read(conn, account_id)]


def hook(conn: Connection, account_id: int, endpoint_id: str) -> Endpoint | None:
    row_id = _row_id(conn, account_id, endpoint_id)
    if row_id is None:
        return None
    return Endpoint(endpoints.one(conn, account_id, endpoint_id), _pending(conn, row_id))


def attempts_page(
    conn: Connection, account_id: int, endpoint_id: str, before: int | None
) -> tuple[list[Attempt], int | None]:
    """A page of an endpoint's delivery attempts, newest first (before the row ``before``), and where
    the next page starts."""
    row_id = _row_id(conn, account_id, endpoint_id)
    if row_id is None:
        return [], None
    a, e = webhook_attempts.c, webhook_events.c
    query = (
        select(a.id, e.event_id, e.type, e.status, a.attempted_at, a.status_code, a.latency_ms, a.error)
        .join(webhook_events, e.id == a.event)
        .where(a.endpoint == row_id)
    )
    if before is not None:
        query = query.where(a.id < before)
    rows = conn.execute(query.order_by(a.id.desc()).limit(PAGE + 1)).all()
    found = [Attempt(r[0], r[1], r[2], outbox.shown(r[3]), *r[4:]) for r in rows[:PAGE]]
    return found, (found[-1].row if len(rows) > PAGE else None)
