"""The one-click unsubscribe link of every email (RFC 8058): ``POST /u/{token}`` from a mail client's
unsubscribe button, and ``GET /u/{token}``, a plain page with the same button for people. No API key:
the link's signature is its authority. A link that was not made here is refused with a plain page."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import MediaType
from litestar.params import PathParameter

from patron.accounts import now
from patron.email import links
from patron.ingest.queue import enqueue_operation
from patron.profiles.operations import UNSUBSCRIBE
from patron.profiles.requests import Unsubscribe

Token = Annotated[str, PathParameter(max_length=128)]
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body><main><h1>{title}</h1>{body}</main></body></html>
"""
REFUSED = PAGE.format(title="This link is not valid", body="<p>It may have been altered or cut short.</p>")
DONE = PAGE.format(
    title="You are unsubscribed", body="<p>You will no longer receive marketing email from us.</p>"
)


def _page(html: str, status: int = 200) -> Response[str]:
    return Response(html, status_code=status, media_type=MediaType.HTML)


@get(f"{links.PATH}/{{token:str}}", include_in_schema=False)
async def unsubscribe_page(token: Token, state: State) -> Response[str]:
    if await state.store.read(lambda conn: links.verify(conn, token)) is None:
        return _page(REFUSED, 400)
    form = (
        f'<form method="post" action="{links.PATH}/{token}"><button type="submit">Unsubscribe</button></form>'
    )
    return _page(PAGE.format(title="Unsubscribe", body=form))


@post(f"{links.PATH}/{{token:str}}", include_in_schema=False, status_code=200)
async def unsubscribe(token: Token, request: Request[Any, Any, Any], state: State) -> Response[str]:
    """One click: the address the message went to is unsubscribed (``list_unsubscribe``), in order
    with the account's pushes."""
    body = await request.body()
    one_click = b"List-Unsubscribe=One-Click" in body
    kind = "list_unsubscribe" if one_click else "link_unsubscribe"

    def record(conn: Any) -> bool:
        found = links.verify(conn, token)
        if found is None:
            return False
        operation = Unsubscribe(found.email, kind)
        enqueue_operation(
            conn, found.account_id, found.queue_limit, str(uuid.uuid4()), UNSUBSCRIBE, operation, now()
        )
        return True

    if not await state.store.write(record):
        return _page(REFUSED, 400)
    state.worker.wake()
    return _page(DONE)
