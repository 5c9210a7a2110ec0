"""The connections ``patron serve`` accepts: deadlines for a request's head and body, and a cap on the
connections open from one address.

uvicorn closes a connection left idle between two requests (its keep-alive timeout, 5 s), and nothing
else: a client that completes TLS and sends nothing, sends a request's head a byte at a time, or sends
less body than its ``Content-Length`` keeps its connection (a descriptor, buffers, a task) for as long
as it likes. ``Connection`` is uvicorn's httptools protocol with three additions:

- a request's head must be complete within ``header_timeout`` seconds of the connection's start (its
  TLS handshake done) or of the previous response's end;
- a request's whole body must arrive within ``body_timeout`` seconds of its head (a deadline, not an
  allowed silence: a client trickling a byte a second is closed all the same);
- no more than ``per_address`` connections are open from one address at a time, in each process; the
  next one is closed as soon as it is made.

A deadline that passes while the server itself is not reading (its application has not yet taken the
body received so far, or a pipelined request waits for the one before it) starts again. A connection
past a deadline or over the cap is aborted rather than closed: nothing is owed to it, so its
descriptor goes at once, without waiting for TLS's farewell. A body that came too late leaves
``DISCONNECTED`` 408 in its request's scope state, so that the request is logged and counted as a
timeout (a client that hangs up is 499: ``patron.api.observe``).

``new_event_loop`` is uvloop's loop, which uvicorn would use, with the TLS handshake (which asyncio and
uvloop allow 60 seconds) held to ``header_timeout`` as well.

The limits are ``Connection.limits``, set by ``configure`` in each API process before it accepts a
connection; uvicorn imports the protocol and the loop by name (``http=``, ``loop=``), which is how its
worker processes find them too.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from patron.api.observe import DISCONNECTED
from patron.config import Settings

log = logging.getLogger("patron.connections")

#: The status a request whose body came too late is logged with.
BODY_TIMED_OUT = 408


@dataclass(frozen=True)
class Limits:
    """The deadlines of a request's head and body, in seconds, and the cap per address (None: none)."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    per_address: int | None = 100


def configure(settings: Settings) -> None:
    """Apply ``settings``' limits to the connections this process accepts from now on. Behind a proxy
    every connection comes from the proxy's address: there is no cap per address."""
    cap = settings.connections_per_address
    Connection.limits = Limits(
        settings.header_timeout, settings.body_timeout, None if settings.behind_proxy or not cap else cap
    )


class Connection(HttpToolsProtocol):
    """One HTTP/1.1 connection, with deadlines for its requests' heads and bodies."""

    limits: ClassVar[Limits] = Limits()
    #: The connections open in this process, by client address (those under a cap only).
    by_address: ClassVar[Counter[str]] = Counter()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline: asyncio.TimerHandle | None = None
        self.counted: str | None = None  # the address this connection is counted under

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cap = self.limits.per_address
        if cap is not None and self.client is not None:
            address = self.client[0]
            if self.by_address[address] >= cap:
                log.warning("connection refused: over the limit per address", extra={"limit": cap})
                transport.abort()
                return
            self.by_address[address] += 1
            self.counted = address
        self._expect_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.counted is not None:
            self.by_address[self.counted] -= 1
            if not self.by_address[self.counted]:
                del self.by_address[self.counted]
            self.counted = None
        super().connection_lost(exc)

    # the parser's callbacks, in the order of a request

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.deadline is None:  # a pipelined request's head, begun while the one before is served
            self._expect_head()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.limits.body_timeout, self._body_late)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete and not self.transport.is_closing():
            self._expect_head()  # answered before its body ended: the connection waits for the next

    def on_response_complete(self) -> None:
        waits = not self.pipeline
        super().on_response_complete()
        if waits and self.deadline is None and not self.transport.is_closing():
            self._expect_head()

    # deadlines

    def _expect_head(self) -> None:
        self._arm(self.limits.header_timeout, self._head_late)

    def _arm(self, seconds: float, expired: Callable[[], None]) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _head_late(self) -> None:
        self.deadline = None
        if self.flow.read_paused:
            self._expect_head()
        else:
            self.transport.abort()

    def _body_late(self) -> None:
        self.deadline = None
        if self.flow.read_paused:
            self._arm(self.limits.body_timeout, self._body_late)
            return
        if not self.cycle.response_complete:
            self.cycle.scope["state"][DISCONNECTED] = BODY_TIMED_OUT
        self.transport.abort()


class Loop(uvloop.Loop):
    """uvloop's event loop, whose TLS servers give a handshake the time of a request's head."""

    async def create_server(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_handshake_timeout", Connection.limits.header_timeout)
        return await super().create_server(*args, **kwargs)


def new_event_loop() -> Loop:
    """The event loop of an API process (uvicorn's ``loop=``)."""
    return Loop()
