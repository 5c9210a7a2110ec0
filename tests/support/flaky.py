"""A plain-HTTP proxy on 127.0.0.1 in front of a real Patron, that misbehaves when told to.

It forwards every request (method, path and query, headers, body) to the upstream server over HTTPS
and returns its answer, except while told to refuse requests (a status and a problem+json body, with
``Retry-After`` when given, without reaching upstream) or to be down (every connection closed without
an answer). ``answered`` lists what each request was answered, in order; ``dropped`` counts the
requests closed without one.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

#: Headers that belong to one connection, not to the request or answer passed on (and the encoding,
#: which httpx undoes: the proxy passes on the decoded body).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
        "accept-encoding",
    }
)

#: Headers of an answer that the proxy writes itself.
REWRITTEN = HOP_BY_HOP | {"date", "server"}


class Flaky:
    """``with Flaky(server.url, server.ca) as proxy:`` clients talk to ``proxy.url`` instead."""

    def __init__(self, upstream: str, ca: Path | str | None) -> None:
        verify = ssl.create_default_context(cafile=str(ca)) if ca is not None else True
        self._upstream = httpx.Client(base_url=upstream, verify=verify, timeout=60)
        self._lock = threading.Lock()
        self._refusals: list[tuple[int, int | None]] = []  # the next requests' status and Retry-After
        self._down_until = 0.0
        self.answered: list[tuple[str, str, int]] = []
        self.dropped = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="flaky", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._upstream.close()

    def refuse(self, status: int, count: int, retry_after: int | None = None) -> None:
        """The next ``count`` requests are answered ``status`` (a problem+json body, ``Retry-After``
        when given) without reaching upstream."""
        with self._lock:
            self._refusals.extend([(status, retry_after)] * count)

    def down(self, seconds: float) -> None:
        """For ``seconds``, every connection is closed without an answer (a server gone away)."""
        with self._lock:
            self._down_until = time.monotonic() + seconds

    def _next(self) -> tuple[str, int, int | None]:
        """What to do with the request that just came in: ("drop"), ("refuse", status, retry after)
        or ("forward")."""
        with self._lock:
            if time.monotonic() < self._down_until:
                self.dropped += 1
                return "drop", 0, None
            if self._refusals:
                status, retry_after = self._refusals.pop(0)
                return "refuse", status, retry_after
        return "forward", 0, None

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.answered.append((method, path, status))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_request(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                action, status, retry_after = flaky._next()
                path = self.path.split("?", 1)[0]
                if action == "drop":
                    self.close_connection = True
                    return
                if action == "refuse":
                    problem = {
                        "title": HTTPStatus(status).phrase,
                        "status": status,
                        "detail": f"refused by the test proxy ({status})",
                    }
                    headers = {"Content-Type": "application/problem+json"}
                    if retry_after is not None:
                        headers["Retry-After"] = str(retry_after)
                    flaky._record(self.command, path, status)  # before the client can see it
                    self.answer(status, headers, json.dumps(problem).encode())
                    return
                sent = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                reply = flaky._upstream.request(self.command, self.path, headers=sent, content=body)
                kept = {k: v for k, v in reply.headers.items() if k.lower() not in REWRITTEN}
                flaky._record(self.command, path, reply.status_code)
                self.answer(reply.status_code, kept, reply.content)

            def answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_request

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
