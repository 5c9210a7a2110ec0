"""``POST /v2/push``, ``GET /v2/push/_errors`` and ``GET /v2/push/{request_id}``."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import PathParameter, QueryParameter

from patron.accounts import Account, now
from patron.api.auth import BODY_TYPE, RATE_CLASS, CurrentAccount
from patron.api.body import content_type_warnings, read_json
from patron.api.paging import Offset
from patron.api.problems import ERRORS, ITEM_ERRORS, FieldError, ProblemError, or_404
from patron.ingest import push as ingest
from patron.ingest.queue import BacklogFull, BatchStatus, PushError, batch_status, latest_errors
from patron.records.fields import NO_NUL_PATTERN
from patron.records.validate import BatchInvalid, FieldWarning, RecordsInvalid
from patron.store import Work

T = TypeVar("T")
#: The most push errors one page reads (``GET /v2/push/_errors``; Ometria's shows the latest 100).
MAX_ERRORS = 1000


async def accept(
    state: State,
    account: Account,
    body: bytes,
    *,
    all_or_nothing: bool = False,
    notes: list[FieldWarning] | None = None,
) -> tuple[ingest.PushReply, dict[str, str]]:
    """Queue a push body; a body that is not a push, or a full queue, changes nothing (nor does a
    rejected record when ``all_or_nothing``, as for the single-record POSTs). ``notes``: warnings
    about the request itself (``body.content_type_warnings``)."""
    try:
        reply, size = await ingest.push(
            state.store, account, body, now(), all_or_nothing=all_or_nothing, notes=notes or ()
        )
    except BatchInvalid as exc:
        size = await ingest.queue_size(state.store, account)
        error = FieldError(exc.field, exc.message)
        raise ProblemError(400, f"{exc.field}: {exc.message}", errors=[error], headers=size.headers) from exc
    except RecordsInvalid as exc:
        errors = [FieldError(e.error_path, e.error_message) for e in exc.errors]
        raise ProblemError(400, "; ".join(f"{e.field}: {e.detail}" for e in errors), errors=errors) from exc
    except BacklogFull as exc:
        size = ingest.QueueSize(exc.limit, exc.limit - exc.queued)
        detail = (
            f"the account has {exc.queued:,} records queued and may queue {exc.limit:,}; this push does not"
            " fit, and nothing was stored"
        )
        raise ProblemError(429, detail, headers={**size.headers, "Retry-After": "5"}) from exc
    state.worker.wake()
    return reply, size.headers


async def queue(state: State, work: Work[T]) -> T:
    """Run ``work``, which queues an operation (a merge, an anonymisation), and wake the worker; a
    full queue is a 429 and nothing is stored."""
    try:
        done: T = await state.store.write(work)
    except BacklogFull as exc:
        detail = (
            f"the account has {exc.queued:,} records queued and may queue {exc.limit:,}; nothing was stored"
        )
        raise ProblemError(429, detail, headers={"Retry-After": "5"}) from exc
    state.worker.wake()
    return done


@post(
    "/push",
    status_code=202,
    summary="Push up to 100 records of one type",
    tags=["push"],
    responses=ERRORS,
    opt={RATE_CLASS: "push", BODY_TYPE: "PushBody"},
)
async def push(
    request: Request[Any, Any, Any], account: CurrentAccount, state: State
) -> Response[ingest.PushReply]:
    body = await read_json(request)
    reply, headers = await accept(state, account, body, notes=content_type_warnings(request))
    return Response(reply, status_code=202, headers=headers)


RequestId = Annotated[str, PathParameter(pattern=NO_NUL_PATTERN)]


@post("/_bench/noop", status_code=202, include_in_schema=False, opt={RATE_CLASS: "push"})
async def noop(request: Request[Any, Any, Any], account: CurrentAccount) -> Response[bytes]:
    """What a push costs before validation and storage: the benchmark's ceiling (``--bench-noop``)."""
    await read_json(request)
    return Response(b'{"status":"OK"}', status_code=202, media_type="application/json")


@get(
    "/push/_errors",
    summary="The latest rejected records and lenient readings, newest first",
    tags=["push"],
    responses=ERRORS,
)
async def push_errors(
    account: CurrentAccount,
    state: State,
    limit: Annotated[
        int,
        QueryParameter(
            ge=1, description=f"Errors per page: default 100, above {MAX_ERRORS} reads {MAX_ERRORS}"
        ),
    ] = 100,
    offset: Offset = 0,
) -> list[PushError]:
    found: list[PushError] = await state.store.read(
        lambda conn: latest_errors(conn, account.id, min(limit, MAX_ERRORS), offset)
    )
    return found


@get(
    "/push/{request_id:str}",
    summary="Whether a push request is queued or applied",
    tags=["push"],
    responses=ITEM_ERRORS,
)
async def push_status(request_id: RequestId, account: CurrentAccount, state: State) -> BatchStatus:
    found: BatchStatus | None = await state.store.read(
        lambda conn: batch_status(conn, account.id, request_id)
    )
    return or_404(found, "request_id", f"no push request {request_id!r} in this account")
