"""The website tag and its collector (reference section 9): ``GET /tags/{account hash}.js`` serves
Patron's tag, beaconing to the host that served it; ``GET /track/v3/{hash}/event.gif`` and ``POST
/track/v3/{hash}/event.html`` take its events (or those of Ometria's own tag pointed here). No API
key: they are public. Every answer is the same GIF (or empty page), whatever came in: nothing tells
whether an account exists or an event was kept. What does not decode is dropped; a browser or an
address sending more than its limit (``PATRON_TRACK_PER_VISITOR``, ``PATRON_TRACK_PER_ADDRESS``,
counted in each API process) is dropped too."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from litestar import Request, Response, get, post
from litestar.params import PathParameter

from patron.api import pages
from patron.api.edge import Injected
from patron.tracking import wire
from patron.tracking.collect import Collector, well_formed

TAG = (Path(__file__).parent.parent / "static" / "tag.js").read_text()
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
EMPTY_PAGE = "<!doctype html><title></title>"
Text = Annotated[str, PathParameter()]


def _nothing(html: bool) -> Response[Any]:
    if html:
        page = Response(EMPTY_PAGE, media_type="text/html", headers={"Cache-Control": "no-store"})
        return pages.secure(page)
    return Response(GIF, media_type="image/gif", headers={"Cache-Control": "no-store"})


@get("/tags/{name:str}", include_in_schema=False)
async def tag(name: Text, request: Request[Any, Any, Any]) -> Response[Any]:
    """The tag for an account: cacheable, and the same for any well-formed hash."""
    account_hash = name.removesuffix(".js")
    if not name.endswith(".js") or not well_formed(account_hash):
        return Response("/* no such tag */", status_code=404, media_type="application/javascript")
    origin = str(request.base_url).rstrip("/")
    body = TAG.replace("__PATRON_ORIGIN__", origin).replace("__ACCOUNT_HASH__", account_hash)
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    headers = {"Cache-Control": "public, max-age=300", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(b"", status_code=304, headers=headers)
    return Response(body, media_type="application/javascript; charset=utf-8", headers=headers)


def _address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "?"


@get("/track/v3/{account_hash:str}/event.gif", include_in_schema=False)
async def beacon(
    account_hash: Text, request: Request[Any, Any, Any], collector: Injected[Collector]
) -> Response[Any]:
    data = request.query_params.get("data")
    if isinstance(data, str):
        await collector.take(_address(request), account_hash, data)
    return _nothing(html=False)


@post("/track/v3/{account_hash:str}/event.html", include_in_schema=False, status_code=200)
async def beacon_form(
    account_hash: Text, request: Request[Any, Any, Any], collector: Injected[Collector]
) -> Response[Any]:
    form = parse_qs((await request.body())[: wire.MAX_DATA * 2].decode("ascii", "replace"))
    data = form.get("data", [None])[0]
    if data:
        await collector.take(_address(request), account_hash, data)
    return _nothing(html=True)


HANDLERS = [tag, beacon, beacon_form]
