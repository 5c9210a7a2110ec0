"""The console's Live page: what happens to an account as it happens (pushes accepted, records
applied, tag beacons, operations, rejected records), sent to the page as server-sent events.

The stream looks at the store every :data:`POLL` seconds with a few indexed queries
(:mod:`patron.console.tail`), off the event loop, and ends after :data:`LIFETIME` seconds (the
browser's ``EventSource`` reconnects, sending the last event id: the stream goes on from there). A
session has one stream at a time in this process: a newer one ends the older, which is told so."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.response import ServerSentEvent, ServerSentEventMessage

from patron import operators
from patron.api.edge import Injected
from patron.console import tail
from patron.console.accounts import AccountHash
from patron.console.imports import import_url, profile_url
from patron.console.render import page
from patron.console.session import PATH, Signed
from patron.store import Store, fair

#: Seconds between two looks at the store, and the most a stream lasts.
POLL = 1.0
LIFETIME = 600.0
#: What the browser waits before it reconnects, in milliseconds.
RETRY_MS = 2000
#: The stream of each session (by its CSRF token, which only its session knows): set to end it.
_streams: dict[str, asyncio.Event] = {}
_encode = msgspec.json.Encoder().encode


@get(f"{PATH}/accounts/{{account_hash:str}}/live", include_in_schema=False)
async def live(account_hash: AccountHash, session: Signed, store: Injected[Store]) -> Response[str]:
    account = await store.read(lambda conn: operators.account_for(session.operator, conn, account_hash))
    return page("live.html", "Live", session=session, account=account, kinds=tail.KINDS)


def _message(account_hash: str, line: tail.Line, cursor: tail.Cursor) -> ServerSentEventMessage:
    shown = {
        "kind": line.kind,
        "at": line.at,
        "text": line.text,
        "identity": line.identity,
        "url": import_url(account_hash, line.request_id),
        "profile": profile_url(account_hash, line.profile) if line.profile else None,
    }
    return ServerSentEventMessage(data=_encode(shown).decode(), event="line", id=cursor.token)


@get(f"{PATH}/accounts/{{account_hash:str}}/live/events", include_in_schema=False)
async def live_events(
    request: Request[Any, Any, Any],
    account_hash: AccountHash,
    session: Signed,
    store: Injected[Store],
) -> ServerSentEvent:
    account = await store.read(lambda conn: operators.account_for(session.operator, conn, account_hash))
    given = tail.Cursor.parse(request.headers.get("last-event-id"))
    cursor: tail.Cursor = given if given is not None else await store.read(tail.start)
    key = session.csrf
    previous = _streams.get(key)
    if previous is not None:
        previous.set()
    stop = _streams[key] = asyncio.Event()

    async def lines() -> AsyncIterator[ServerSentEventMessage]:
        nonlocal cursor
        fair.owner.set(account_hash)  # the account's looks wait their turn with its other reads
        followed: dict[int, str] = {}
        ends = time.monotonic() + LIFETIME
        try:
            yield ServerSentEventMessage(event="open", data="live", id=cursor.token, retry=RETRY_MS)
            while time.monotonic() < ends:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL)
                if stop.is_set():
                    yield ServerSentEventMessage(
                        event="replaced", data="another page of this session is live"
                    )
                    return
                at = cursor
                seen = await store.read(
                    partial(tail.look, account_id=account.id, cursor=at, followed=followed)
                )
                cursor, followed = seen.cursor, seen.followed
                for line in seen.lines:
                    yield _message(account_hash, line, cursor)
                if not seen.lines and at != cursor:
                    yield ServerSentEventMessage(data=None, comment="", id=cursor.token)
        finally:
            if _streams.get(key) is stop:
                del _streams[key]

    return ServerSentEvent(lines(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


HANDLERS = [live, live_events]
