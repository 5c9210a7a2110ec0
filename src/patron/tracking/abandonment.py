"""Sessions end after :data:`IDLE` without activity (``PATRON_SESSION_IDLE``). When a session of an
identified visitor ends with a basket and no transaction, the profile gets an ``abandoned_basket``
custom event with the basket's lines and total; when it ends with product views (``viewproduct``, or
a product page's view: ``events.product_view``) and nothing added to a basket, ``browse_abandoned``
with the products viewed. The events are queued as pushes are, so they are custom events like
any other (``GET /v2/custom-events``), applied in order; their ids make them happen once."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import Connection, select, update

from patron.accounts import now
from patron.ingest.queue import enqueue, pack
from patron.records.validate import validate
from patron.store import Store
from patron.store.schema import tracking_events, tracking_sessions
from patron.tracking.events import may_be_product_view, product_view

log = logging.getLogger("patron.tracking")
IDLE = 1800.0
ABANDONED_BASKET, BROWSE_ABANDONED, CONVERTED, ENDED = (
    "abandoned_basket",
    "browse_abandoned",
    "converted",
    "ended",
)
BATCH = 200


def _outcome(row: Any) -> str:
    basket = msgspec.json.decode(row.basket) if row.basket else None
    if msgspec.json.decode(row.transactions):
        return CONVERTED
    if basket and basket.get("lines"):
        return ABANDONED_BASKET
    if row.product_views and not row.basket_adds:
        return BROWSE_ABANDONED
    return ENDED


def _event(conn: Connection, row: Any, outcome: str) -> dict[str, Any]:
    """The custom event an abandoned session gives its profile."""
    properties: dict[str, Any] = {"session_id": row.session_id}
    if outcome == ABANDONED_BASKET:
        basket = msgspec.json.decode(row.basket)
        properties.update({k: basket[k] for k in ("lines", "total", "currency")}, basket_url=basket["url"])
    else:
        e = tracking_events
        viewed = conn.execute(
            select(e.c.kind, e.c.data)
            .where(
                e.c.account_id == row.account_id,
                e.c.cid == row.cid,
                e.c.session_id == row.session_id,
                may_be_product_view(e),
            )
            .order_by(e.c.id)
        )
        products = [product_view(kind, msgspec.json.decode(data)) for kind, data in viewed]
        properties["products"] = list(dict.fromkeys(p for p in products if p))
    return {
        "@type": "custom_event",
        "id": f"{outcome}:{row.session_id}",
        "event_type": outcome,
        "profile_id": row.profile,
        "timestamp": row.last_at.isoformat(),
        "properties": properties,
    }


def sweep(conn: Connection, at: datetime, idle: timedelta) -> int:
    """End the sessions idle for longer than ``idle`` (at most :data:`BATCH` at a time) and queue
    the events of those abandoned; returns how many ended."""
    s = tracking_sessions
    rows = conn.execute(
        select(s).where(s.c.ended_at.is_(None), s.c.last_at < at - idle).order_by(s.c.last_at).limit(BATCH)
    ).all()
    for row in rows:
        outcome = _outcome(row)
        conn.execute(update(s).where(s.c.id == row.id).values(ended_at=at, outcome=outcome))
        if outcome in (ABANDONED_BASKET, BROWSE_ABANDONED) and row.profile:
            batch = validate(msgspec.json.encode([_event(conn, row, outcome)]), at)
            if batch.accepted:
                enqueue(conn, row.account_id, None, str(uuid.uuid4()), batch, pack(batch.accepted), [], at)
            else:  # a basket the push rules refuse (say, too large): the session still ends
                log.warning("abandonment event refused", extra={"session_id": row.session_id})
    return len(rows)


class Sweeper:
    """Ends idle sessions every ``poll`` seconds (a thread of ``patron worker``)."""

    def __init__(self, store: Store, stop: threading.Event, idle: float = IDLE, poll: float = 5.0) -> None:
        self.store, self.stop, self.poll = store, stop, poll
        self.idle = timedelta(seconds=idle)
        self.thread = threading.Thread(target=self.run, name="patron-sessions", daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                ended = self.store.write_blocking(lambda conn: sweep(conn, now(), self.idle))
            except Exception:
                log.exception("ending idle sessions failed; retrying")
                ended = 0
            if ended < BATCH:
                self.stop.wait(self.poll)
