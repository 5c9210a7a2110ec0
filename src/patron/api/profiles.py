"""Profiles and profile merges: ``GET /v2/profiles``, ``GET /v2/profiles/{id}``, ``POST /v2/merge-profile``
and the merge job's status (an extension)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import PathParameter, QueryParameter

from patron import entities
from patron.accounts import now
from patron.api.auth import BODY_TYPE, RATE_CLASS, CurrentAccount
from patron.api.body import decode, read_json
from patron.api.edge import Injected
from patron.api.entities import JSON, Filter, response_spec
from patron.api.paging import Limit, Offset
from patron.api.problems import ERRORS, ITEM_ERRORS, or_404
from patron.ingest import jobs
from patron.ingest.queue import enqueue_operation
from patron.ingest.submit import Submitter
from patron.profiles import read
from patron.profiles.build import Profile
from patron.profiles.operations import MERGE
from patron.profiles.requests import MergeRequest
from patron.records.fields import MAX_MADE_ID_LENGTH, NO_NUL_PATTERN
from patron.store import Store
from patron.tracking import read as tracking

ProfileId = Annotated[str, PathParameter(pattern=NO_NUL_PATTERN, max_length=MAX_MADE_ID_LENGTH)]
_merge_request = msgspec.json.Decoder(MergeRequest)


@get(
    "/profiles",
    summary="Profiles, or the profiles with an email",
    tags=["profiles"],
    responses=response_spec(list[Profile]),
)
async def list_profiles(
    account: CurrentAccount,
    store: Injected[Store],
    limit: Limit = entities.DEFAULT_LIMIT,
    offset: Offset = 0,
    update_since: Annotated[
        date | None, QueryParameter(name="updateSince", description="Profiles updated on or after this day")
    ] = None,
    email: Filter = None,
) -> Response[bytes]:
    page = entities.Page.of(limit, offset, None)
    since = datetime.combine(update_since, datetime.min.time(), UTC) if update_since else None
    if email is not None:
        docs = await store.read(lambda conn: read.by_email(conn, account.id, email, page))
    else:
        docs = await store.read(lambda conn: read.list_profiles(conn, account.id, page, since))
    return Response(entities.as_array(docs), media_type=JSON)


@get(
    "/profiles/{profile_id:str}",
    summary="One profile (an id merged away answers with the surviving profile)",
    tags=["profiles"],
    responses=response_spec(Profile),
)
async def read_profile(
    profile_id: ProfileId, account: CurrentAccount, store: Injected[Store]
) -> Response[bytes]:
    doc = await store.read(lambda conn: read.get_profile(conn, account.id, profile_id))
    return Response(
        or_404(doc, "profile_id", f"no profile {profile_id!r} in this account").encode(), media_type=JSON
    )


@post(
    "/merge-profile",
    status_code=202,
    summary="Merge profiles into a survivor (a job the worker runs in order with pushes)",
    tags=["profiles"],
    responses=ERRORS,
    opt={RATE_CLASS: "merge", BODY_TYPE: "patron.profiles.requests:MergeBody"},
)
async def merge_profile(
    request: Request[Any, Any, Any], account: CurrentAccount, submit: Injected[Submitter]
) -> Response[jobs.MergeJob]:
    body = decode(await read_json(request), _merge_request)
    job_id, received = str(uuid.uuid4()), now()
    await submit.queue(
        lambda conn, limit: enqueue_operation(conn, account.id, limit, job_id, MERGE, body, received),
        limit=account.queue_limit,
    )
    job = jobs.MergeJob(job_id, "queued", None, [], None, received.isoformat(), None)
    return Response(job, status_code=202)


@get(
    "/merge-profile/{job_id:str}",
    summary="A merge job: queued, completed or failed (an extension)",
    tags=["profiles"],
    responses=ITEM_ERRORS,
)
async def merge_status(job_id: ProfileId, account: CurrentAccount, store: Injected[Store]) -> jobs.MergeJob:
    job = await store.read(lambda conn: jobs.merge_job(conn, account.id, job_id))
    return or_404(job, "job_id", f"no merge job {job_id!r} in this account")


@get(
    "/profiles/{profile_id:str}/export",
    summary="Everything held about a profile's person (an access request; an extension)",
    tags=["profiles"],
    responses=ITEM_ERRORS,
)
async def export_profile(
    profile_id: ProfileId, account: CurrentAccount, store: Injected[Store]
) -> dict[str, Any]:
    found = await store.read(lambda conn: read.export(conn, account.id, profile_id))
    return or_404(found, "profile_id", f"no profile {profile_id!r} in this account")


@get(
    "/profiles/{profile_id:str}/activity",
    summary="A profile's timeline, newest first: on the site, through the API and in email (an extension)",
    tags=["profiles"],
    responses=ITEM_ERRORS,
)
async def profile_activity(
    profile_id: ProfileId,
    account: CurrentAccount,
    store: Injected[Store],
    limit: Limit = entities.DEFAULT_LIMIT,
    offset: Offset = 0,
) -> list[tracking.Activity]:
    page = entities.Page.of(limit, offset, None)
    found = await store.read(lambda conn: tracking.activity(conn, account.id, profile_id, page))
    return or_404(found, "profile_id", f"no profile {profile_id!r} in this account")


HANDLERS = [list_profiles, read_profile, export_profile, profile_activity, merge_profile, merge_status]
