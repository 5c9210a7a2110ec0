"""``POST /v2/_bench/noop``: what a push costs before validation and storage (the guard's key and
rate limit, and the body read), the ceiling ``bench/push.py`` measures pushes against. Mounted only in
a server started for a benchmark (``patron serve --bench-noop``: ``Settings.bench_noop``); any other
answers it with a 404."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from patron.api.auth import RATE_CLASS, CurrentAccount
from patron.api.body import read_json


@post("/_bench/noop", status_code=202, include_in_schema=False, opt={RATE_CLASS: "push"})
async def noop(request: Request[Any, Any, Any], account: CurrentAccount) -> Response[bytes]:
    """Read the body as a push does, store nothing."""
    await read_json(request)
    return Response(b'{"status":"OK"}', status_code=202, media_type="application/json")
