"""Around every request: a request id, one JSON log line, and the Prometheus metrics; and what a
scrape of ``/metrics`` reads from the database.

It wraps the application's whole ASGI handler (404s and 405s included), so every request is counted
and logged exactly once. The log line never carries the API key or the body. A request whose connection
ends before its body is read is logged and counted with the status kept in its scope state under
``DISCONNECTED``: 499 (nginx's "client closed request") when the client hung up, 408 when the server
closed the connection because the body came too late (``patron.connections``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from http import HTTPStatus
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send
from sqlalchemy import Connection

from patron.email import messages
from patron.ingest import queue
from patron.metrics import Database, Queued, exposition, instruments
from patron.store import Store, StoreUnavailable, database_size
from patron.webhooks import outbox

log = logging.getLogger("patron.http")

#: The scope state key of the status of a request whose connection ended before its body was read.
DISCONNECTED = "disconnected"
CLIENT_CLOSED = 499


#: The scope state key of the endpoint class the guard counted the request against.
RATE_CLASS_STATE = "rate_class"
#: The scope state key of why a 429 was answered: ``rate_limit``, ``queue_full`` or ``busy``.
THROTTLED = "throttled"
#: Seconds a reading of the database's values serves scrapes, and the most one reading may take.
CACHE_SECONDS = 5.0
READ_BUDGET = 5.0
#: The most accounts whose queue is exposed (those with the largest backlogs).
MAX_ACCOUNTS = 1000


def read_database(conn: Connection) -> Database:
    """The database's values for a scrape: a few indexed reads, bounded by :data:`MAX_ACCOUNTS`."""
    return Database(
        read=True,
        queued=[Queued(*row) for row in queue.depths(conn, MAX_ACCOUNTS)],
        backlog=queue.total_backlog(conn),
        messages=messages.count_by_status(conn),
        webhooks_pending=outbox.pending(conn),
        size_bytes=database_size(conn),
    )


class Metrics:
    """What ``GET /metrics`` answers: the counters of every process of the host
    (:func:`patron.metrics.exposition`) and the database's values, read by one scrape at a time (a
    store read within :data:`READ_BUDGET`) and kept for :data:`CACHE_SECONDS`, so that frequent scrapes
    cost nothing."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = asyncio.Lock()
        self._database = Database()
        self._read_at: float | None = None

    async def database(self) -> Database:
        async with self._lock:
            if self._read_at is None or time.monotonic() - self._read_at >= CACHE_SECONDS:
                try:
                    self._database = await self.store.read(read_database, budget=READ_BUDGET)
                except StoreUnavailable as exc:
                    log.warning("the database's metrics could not be read", extra={"error": str(exc)})
                    self._database = Database()
                self._read_at = time.monotonic()
            return self._database

    async def scrape(self) -> bytes:
        """The text of a scrape; the metric files are read off the event loop."""
        database = await self.database()
        return await asyncio.to_thread(exposition, database)


class Observer:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        async def receive_observed() -> ReceiveMessage:
            message = await receive()
            if message["type"] == "http.disconnect":
                state.setdefault(DISCONNECTED, CLIENT_CLOSED)
            return message

        try:
            await self.app(scope, receive_observed, send_observed)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or "unmatched"
            measured = instruments()
            measured.requests.labels(route, method, str(status)).inc()
            measured.latency.labels(route).observe(elapsed)
            if status == HTTPStatus.TOO_MANY_REQUESTS:
                measured.throttled.labels(
                    state.get(RATE_CLASS_STATE, "none"), state.get(THROTTLED, "busy")
                ).inc()
            account = state.get("account")
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "account": account.hash if account is not None else None,
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
