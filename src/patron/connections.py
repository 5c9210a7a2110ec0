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

``new_event_loop`` is uvloop's loop, which uvicorn would use, except that its TLS servers look at a
connection's first bytes before any TLS: asyncio and uvloop do TLS in ``create_server(ssl=...)``, so a
client speaking plain HTTP to the HTTPS port (``curl http://...``) would see its connection dropped by a
failed handshake, and nothing else. ``Opening`` is the protocol of every new connection instead:

- a TLS record (a ClientHello begins with 0x16) goes on to TLS (``loop.start_tls``), and once the
  handshake is done, to ``Connection``, exactly as uvloop's own TLS server would have;
- an HTTP method (ASCII letters then a space) gets a short plain-text 400 naming the ``https://``
  address to use (nothing the client sent is repeated), and the connection is closed: the rest of
  the request is read only to be dropped;
- anything else is dropped without an answer;
- the first bytes and the handshake must come within ``header_timeout`` of the connection's start
  (uvloop would allow a handshake 60 seconds), or the connection is dropped.

The limits are ``Connection.limits``, set by ``configure`` in each API process before it accepts a
connection; uvicorn imports the protocol and the loop by name (``http=``, ``loop=``), which is how its
worker processes find them too.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from ssl import SSLContext
from typing import Any, ClassVar, cast

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
    Opening.url = f"{settings.base_url}/"
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


#: The start of a plain HTTP request: a method (a few ASCII letters), then a space; and of one not yet
#: complete enough to tell.
_METHOD = re.compile(rb"[A-Za-z]{1,20} ")
_METHOD_SO_FAR = re.compile(rb"[A-Za-z]{1,20}")
#: The first byte of a TLS handshake record, which every TLS connection starts with (its ClientHello).
_TLS_HANDSHAKE = 0x16


def plain_http_answer(url: str) -> bytes:
    """The answer to a plain HTTP request on the HTTPS port: the server's public address (nothing the
    client sent is repeated)."""
    body = f"This port speaks HTTPS: use {url} (the request was not read).\n".encode()
    head = (
        "HTTP/1.1 400 Bad Request\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class Opening(asyncio.Protocol):
    """A connection to the HTTPS port until its first bytes tell what it speaks: TLS goes on to the
    protocol of ``protocol_factory`` (a ``Connection``) once its handshake is done, plain HTTP gets
    ``plain_http_answer``, anything else is dropped."""

    #: Where people reach the server (``PATRON_PUBLIC_URL``, else this host and port), for the answer.
    url: ClassVar[str] = "https://localhost:8443/"

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sslcontext: SSLContext, protocol_factory: Callable[[], Any]
    ) -> None:
        self.loop = loop
        self.sslcontext = sslcontext
        self.protocol_factory = protocol_factory
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.deadline: asyncio.TimerHandle | None = None
        self.first = b""  # the bytes received, while they do not yet tell
        self.handshake: asyncio.Task[None] | None = None
        self.early: list[bytes] = []  # data that came through TLS before the connection was handed on
        self.answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.deadline = self.loop.call_later(Connection.limits.header_timeout, self.transport.abort)

    def data_received(self, data: bytes) -> None:
        if self.answered:  # the rest of a request answered already, read only to be let go of
            return
        if self.handshake is not None:  # through TLS before the hand-over (uvloop sends none so soon)
            self.early.append(data)
            return
        self.first += data
        if self.first[0] == _TLS_HANDSHAKE:
            self._start_tls()
        elif _METHOD.match(self.first):
            self._answer()
        elif not _METHOD_SO_FAR.fullmatch(self.first):
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()

    def _answer(self) -> None:
        """Answer plain HTTP, then close: the answer goes with the end of the stream, and what else the
        client sends is read and dropped until it closes too (or the deadline passes), so that its
        unread request does not turn the close into a reset that could lose the answer."""
        self.answered = True
        self.first = b""
        self.transport.write(plain_http_answer(self.url))
        self.transport.write_eof()

    def _start_tls(self) -> None:
        """Start TLS on the connection, with the bytes already read as the first the handshake sees.

        ``start_tls`` puts its TLS protocol in this one's place and then starts reading for it; the
        bytes already read (the start of the ClientHello) are given to that protocol in between: the
        task's first step, which makes the swap, and ``_feed`` are called in the order they are
        scheduled, with no read from the socket between them (it is paused).
        """
        self.transport.pause_reading()
        self.handshake = self.loop.create_task(self._handshake())
        self.loop.call_soon(self._feed, self.first)
        self.first = b""

    def _feed(self, data: bytes) -> None:
        tls = self.transport.get_protocol()
        if tls is self:  # start_tls failed before it began: its task ends with the error
            return
        receiver = cast(asyncio.BufferedProtocol, tls)
        view = memoryview(data)
        while view:
            buffer = memoryview(receiver.get_buffer(len(view)))
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            receiver.buffer_updated(size)
            view = view[size:]

    async def _handshake(self) -> None:
        try:
            tls = await self.loop.start_tls(
                self.transport,
                self,
                self.sslcontext,
                server_side=True,
                ssl_handshake_timeout=Connection.limits.header_timeout,
            )
        except Exception:  # a failed, late or broken handshake (SSLError, TimeoutError, a reset...)
            self._disarm()
            self.transport.abort()
            return
        self._disarm()
        if tls is None or tls.is_closing():  # aborted at the deadline, as the handshake ended
            return
        protocol = self.protocol_factory()
        tls.set_protocol(protocol)
        protocol.connection_made(tls)
        if self.early and not tls.is_closing():
            protocol.data_received(b"".join(self.early))
        self.early.clear()

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None


class Loop(uvloop.Loop):
    """uvloop's event loop, whose TLS servers start every connection with an ``Opening``."""

    async def create_server(self, protocol_factory: Callable[[], Any], *args: Any, **kwargs: Any) -> Any:
        sslcontext: SSLContext | None = kwargs.pop("ssl", None)
        if sslcontext is None:
            return await super().create_server(protocol_factory, *args, **kwargs)

        def opening() -> Opening:
            return Opening(self, sslcontext, protocol_factory)

        return await super().create_server(opening, *args, **kwargs)


def new_event_loop() -> Loop:
    """The event loop of an API process (uvicorn's ``loop=``)."""
    return Loop()
