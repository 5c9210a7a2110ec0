"""Around every request: a request id, one JSON log line, and the Prometheus metrics.

It wraps the application's whole ASGI handler (404s and 405s included), so every request is counted
and logged exactly once. The log line never carries the API key or the body. A request whose connection
ends before its body is read is logged and counted with the status kept in its scope state under
``DISCONNECTED``: 499 (nginx's "client closed request") when the client hung up, 408 when the server
closed the connection because the body came too late (``patron.connections``).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram

log = logging.getLogger("patron.http")

#: The scope state key of the status of a request whose connection ended before its body was read.
DISCONNECTED = "disconnected"
CLIENT_CLOSED = 499


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "patron_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "patron_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response, by route template",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )


class Observer:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

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
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
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
