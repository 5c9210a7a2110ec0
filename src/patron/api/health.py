"""``GET /health`` (the process is up) and ``GET /ready`` (the store accepts writes). No key needed."""

from __future__ import annotations

import msgspec
from litestar import get

from patron.api.edge import Injected
from patron.health import accepts_writes
from patron.store import Store


class Status(msgspec.Struct):
    status: str


@get("/health", summary="The process is up", tags=["operations"], security=[{}])
async def health() -> Status:
    return Status("ok")


@get("/ready", summary="Storage accepts writes (503 when it does not)", tags=["operations"], security=[{}])
async def ready(store: Injected[Store]) -> Status:
    await accepts_writes(store)
    return Status("ready")
