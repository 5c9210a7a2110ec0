"""``POST /v2/data-deletion-requests``, ``GET /v2/data-deletion-requests`` and ``GET
/v2/data-deletion-requests/{id}`` (reference section 5.9)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import PathParameter

from patron import entities, gdpr
from patron.accounts import now
from patron.api.auth import BODY_TYPE, RATE_CLASS, CurrentAccount
from patron.api.body import decode, read_json
from patron.api.edge import Injected
from patron.api.paging import Limit, Offset
from patron.api.problems import ERRORS, ITEM_ERRORS
from patron.errors import NotFound
from patron.ingest.submit import Submitter
from patron.records.fields import MAX_MADE_ID_LENGTH, NO_NUL_PATTERN
from patron.store import Store

RequestId = Annotated[str, PathParameter(pattern=NO_NUL_PATTERN, max_length=MAX_MADE_ID_LENGTH)]
_request = msgspec.json.Decoder(gdpr.DeletionRequest)


@post(
    "/data-deletion-requests",
    status_code=202,
    summary="Anonymise a person everywhere (processed in order with the account's pushes)",
    tags=["gdpr"],
    responses=ERRORS,
    opt={RATE_CLASS: "gdpr", BODY_TYPE: "patron.gdpr:DeletionBody"},
)
async def request_deletion(
    request: Request[Any, Any, Any], account: CurrentAccount, submit: Injected[Submitter]
) -> Response[gdpr.DeletionView]:
    body = decode(await read_json(request), _request)
    request_id, at = str(uuid.uuid4()), now()
    view = await submit.queue(
        lambda conn, limit: gdpr.request(conn, account.id, limit, request_id, body, at),
        limit=account.queue_limit,
    )
    return Response(view, status_code=202)


@get(
    "/data-deletion-requests", summary="Anonymisation requests, oldest first", tags=["gdpr"], responses=ERRORS
)
async def list_deletions(
    account: CurrentAccount, store: Injected[Store], limit: Limit = entities.DEFAULT_LIMIT, offset: Offset = 0
) -> list[gdpr.DeletionView]:
    page = entities.Page.of(limit, offset, None)
    return await store.read(
        lambda conn: gdpr.read_requests(conn, account.id, limit=page.limit, offset=page.offset)
    )


@get(
    "/data-deletion-requests/{request_id:str}",
    summary="One anonymisation request: queued or completed, with its summary",
    tags=["gdpr"],
    responses=ITEM_ERRORS,
)
async def read_deletion(
    request_id: RequestId, account: CurrentAccount, store: Injected[Store]
) -> gdpr.DeletionView:
    found = await store.read(lambda conn: gdpr.read_requests(conn, account.id, request_id))
    if not found:
        raise NotFound.at("request_id", f"no data deletion request {request_id!r} in this account")
    return found[0]


HANDLERS = [request_deletion, list_deletions, read_deletion]
