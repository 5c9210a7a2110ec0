"""``POST /v2/push``, ``GET /v2/push/_errors`` and ``GET /v2/push/{request_id}``."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import PathParameter, QueryParameter

from patron.accounts import Account, now
from patron.api.auth import BODY_TYPE, RATE_CLASS, CurrentAccount
from patron.api.body import content_type_warnings, read_json
from patron.api.edge import Injected
from patron.api.paging import Offset
from patron.api.problems import ERRORS, ITEM_ERRORS, or_404
from patron.ingest import push as ingest
from patron.ingest.queue import BatchStatus, PushError, batch_status, latest_errors
from patron.ingest.submit import Submitter
from patron.records.fields import NO_NUL_PATTERN
from patron.records.validate import FieldWarning
from patron.store import Store

#: The most push errors one page reads (``GET /v2/push/_errors``; Ometria's shows the latest 100).
MAX_ERRORS = 1000


async def accept(
    submit: Submitter,
    account: Account,
    body: bytes,
    *,
    all_or_nothing: bool = False,
    notes: list[FieldWarning] | None = None,
) -> tuple[ingest.PushReply, dict[str, str]]:
    """Queue a push body, and the queue's size headers; a body that is not a push, or a full queue,
    changes nothing (nor does a rejected record when ``all_or_nothing``, as for the single-record
    POSTs). ``notes``: warnings about the request itself (``body.content_type_warnings``)."""
    reply, size = await ingest.push(
        submit, account, body, now(), all_or_nothing=all_or_nothing, notes=notes or ()
    )
    return reply, size.headers


@post(
    "/push",
    status_code=202,
    summary="Push up to 100 records of one type",
    tags=["push"],
    responses=ERRORS,
    opt={RATE_CLASS: "push", BODY_TYPE: "PushBody"},
)
async def push(
    request: Request[Any, Any, Any], account: CurrentAccount, submit: Injected[Submitter]
) -> Response[ingest.PushReply]:
    body = await read_json(request)
    reply, headers = await accept(submit, account, body, notes=content_type_warnings(request))
    return Response(reply, status_code=202, headers=headers)


RequestId = Annotated[str, PathParameter(pattern=NO_NUL_PATTERN)]


@get(
    "/push/_errors",
    summary="The latest rejected records and lenient readings, newest first",
    tags=["push"],
    responses=ERRORS,
)
async def push_errors(
    account: CurrentAccount,
    store: Injected[Store],
    limit: Annotated[
        int,
        QueryParameter(
            ge=1, description=f"Errors per page: default 100, above {MAX_ERRORS} reads {MAX_ERRORS}"
        ),
    ] = 100,
    offset: Offset = 0,
) -> list[PushError]:
    return await store.read(lambda conn: latest_errors(conn, account.id, min(limit, MAX_ERRORS), offset))


@get(
    "/push/{request_id:str}",
    summary="Whether a push request is queued or applied",
    tags=["push"],
    responses=ITEM_ERRORS,
)
async def push_status(request_id: RequestId, account: CurrentAccount, store: Injected[Store]) -> BatchStatus:
    found = await store.read(lambda conn: batch_status(conn, account.id, request_id))
    return or_404(found, "request_id", f"no push request {request_id!r} in this account")
