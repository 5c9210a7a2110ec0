"""A real HTTPS webhook receiver on 127.0.0.1 (its certificate from Patron's generated local CA), which
keeps every request it is sent and answers as the test says: a status, a delay, a redirect."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook

from patron.tls import local_certificates


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int  # the status it was answered with

    def verified(self, secret: str) -> dict[str, Any]:
        """The payload, its Standard Webhooks signature checked with ``secret``."""
        payload: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return payload


@dataclass
class Receiver:
    port: int
    ca: Path
    #: By path: the status to answer with (else 200), seconds to wait first, a path to redirect to.
    status: dict[str, int] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    arrived: list[str] = field(default_factory=list)  # the webhook-id of each request, as it comes
    #: By path: requests being answered now, and the most there ever were at once.
    under_way: dict[str, int] = field(default_factory=dict)
    most_at_once: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook", host: str = "localhost") -> str:
        return f"https://{host}:{self.port}{path}"

    def requests(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if path is None or r.path == path]

    def delivered(self, path: str | None = None) -> list[Received]:
        """The requests answered 2xx, in the order they came."""
        return [r for r in self.requests(path) if 200 <= r.answered < 300]


@contextmanager
def receiver(directory: Path) -> Iterator[Receiver]:
    files = local_certificates(directory)
    assert files.ca is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    state: Receiver

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            with state.lock:
                state.arrived.append(headers.get("webhook-id", ""))
                now = state.under_way[self.path] = state.under_way.get(self.path, 0) + 1
                state.most_at_once[self.path] = max(now, state.most_at_once.get(self.path, 0))
            time.sleep(state.delay.get(self.path, 0.0))
            redirect = state.redirects.get(self.path)
            status = 302 if redirect else state.status.get(self.path, 200)
            with state.lock:
                state.received.append(Received(self.path, headers, body, status))
                state.under_way[self.path] -= 1
            answer = b'{"ok": true}' if status < 300 else b"x" * 10_000  # a long body: the log keeps 4 KiB
            self.send_response(status)
            if redirect:
                self.send_header("location", redirect)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state = Receiver(server.server_address[1], files.ca)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
