"""Dynamic segments (an extension): ``/v2/segments`` and ``/v2/segments/{id}``, with a segment's
members (``/profiles``), its entries and exits (``/changes``) and its export to a static list."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.openapi import ResponseSpec
from litestar.params import PathParameter, QueryParameter

from patron import entities, segments
from patron.accounts import now
from patron.api.auth import BODY_TYPE, CurrentAccount
from patron.api.body import decode, read_json
from patron.api.edge import Injected
from patron.api.entities import JSON
from patron.api.lists import utc
from patron.api.paging import Limit, Offset
from patron.api.problems import CREATE_ERRORS, ERRORS, ITEM_ERRORS
from patron.errors import NotFound
from patron.ingest.submit import Submitter
from patron.profiles.segments import evaluate, members
from patron.profiles.segments import rules as r
from patron.store import Store

SegmentId = Annotated[str, PathParameter(pattern=r"^[0-9]{1,18}$", max_length=18)]
NOT_FOUND = "Segment with specified ID was not found"
_body = msgspec.json.Decoder(r.SegmentBody)
_export = msgspec.json.Decoder(r.Export)


class DryRun(msgspec.Struct):
    """How many profiles a rule holds now (``?dry_run=true``: nothing is saved)."""

    count: int


class Exporting(msgspec.Struct):
    """An export queued: the list exists; its ``members`` (the segment's size when asked) enter it as
    the worker applies the export's steps, in order with the account's pushes."""

    list_id: str
    members: int


def _key(segment_id: str) -> int:
    key = members.segment_key(segment_id)
    if key is None:
        raise NotFound.at("segment_id", NOT_FOUND)
    return key


async def _one(store: Store, account_id: int, segment_id: int) -> members.SegmentView:
    found = await store.read(lambda conn: members.read(conn, account_id, segment_id=segment_id))
    if not found:
        raise NotFound.at("segment_id", NOT_FOUND)
    return found[0]


async def _rule(request: Request[Any, Any, Any]) -> tuple[str, r.Rule]:
    body = decode(await read_json(request), _body)
    return body.name, r.parse(body.rules)


@get("/segments", summary="Segments, a page at a time (an extension)", tags=["segments"], responses=ERRORS)
async def list_segments(
    account: CurrentAccount, store: Injected[Store], limit: Limit = entities.DEFAULT_LIMIT, offset: Offset = 0
) -> list[members.SegmentView]:
    page = entities.Page.of(limit, offset, None)
    return await store.read(lambda conn: members.read(conn, account.id, limit=page.limit, offset=page.offset))


@post(
    "/segments",
    status_code=201,
    summary="Create a segment, or count who a rule holds with dry_run=true (an extension)",
    tags=["segments"],
    responses={
        200: ResponseSpec(
            data_container=DryRun, description="The count (dry_run=true)", generate_examples=False
        ),
        **CREATE_ERRORS,
    },
    opt={BODY_TYPE: "patron.profiles.segments.rules:SegmentBody"},
)
async def create_segment(
    request: Request[Any, Any, Any],
    account: CurrentAccount,
    store: Injected[Store],
    submit: Injected[Submitter],
    dry_run: Annotated[bool, QueryParameter(description="Count the profiles; save nothing")] = False,
) -> Response[Any]:
    name, rule = await _rule(request)
    if dry_run:
        at = now()
        count = await store.read(lambda conn: evaluate.count(conn, account.id, rule, at))
        return Response(DryRun(count), status_code=200, media_type=JSON)

    segment_id = await submit.queue(
        lambda conn, _: segments.create(conn, account.id, name, rule, now()), limit=None
    )
    return Response(await _one(store, account.id, segment_id), status_code=201, media_type=JSON)


@get("/segments/{segment_id:str}", summary="One segment", tags=["segments"], responses=ITEM_ERRORS)
async def read_segment(
    segment_id: SegmentId, account: CurrentAccount, store: Injected[Store]
) -> Response[members.SegmentView]:
    return Response(await _one(store, account.id, _key(segment_id)), media_type=JSON)


@put(
    "/segments/{segment_id:str}",
    summary="Change a segment's name and rules: it is built again (an extension)",
    tags=["segments"],
    responses=ITEM_ERRORS,
    opt={BODY_TYPE: "patron.profiles.segments.rules:SegmentBody"},
)
async def update_segment(
    request: Request[Any, Any, Any],
    segment_id: SegmentId,
    account: CurrentAccount,
    store: Injected[Store],
    submit: Injected[Submitter],
) -> Response[members.SegmentView]:
    key = _key(segment_id)
    name, rule = await _rule(request)

    changed = await submit.queue(
        lambda conn, _: segments.change(conn, account.id, key, name, rule, now()), limit=None
    )
    if not changed:
        raise NotFound.at("segment_id", NOT_FOUND)
    return Response(await _one(store, account.id, key), media_type=JSON)


@delete(
    "/segments/{segment_id:str}",
    status_code=204,
    summary="Delete a segment, its members and its changes",
    tags=["segments"],
    responses=ITEM_ERRORS,
)
async def delete_segment(segment_id: SegmentId, account: CurrentAccount, store: Injected[Store]) -> None:
    key = _key(segment_id)
    if not await store.write(lambda conn: members.remove(conn, account.id, key)):
        raise NotFound.at("segment_id", NOT_FOUND)


@get(
    "/segments/{segment_id:str}/profiles",
    summary="A segment's members: profile documents, or their ids with ids_only=true",
    tags=["segments"],
    responses={
        200: ResponseSpec(
            data_container=list[Any], description="Profile documents, or ids", generate_examples=False
        ),
        **ITEM_ERRORS,
    },
)
async def segment_profiles(
    segment_id: SegmentId,
    account: CurrentAccount,
    store: Injected[Store],
    limit: Limit = entities.DEFAULT_LIMIT,
    offset: Offset = 0,
    ids_only: Annotated[bool, QueryParameter(description="Profile ids instead of documents")] = False,
) -> Response[bytes]:
    key = _key(segment_id)
    await _one(store, account.id, key)
    page = entities.Page.of(limit, offset, None)
    if ids_only:
        ids = await store.read(
            lambda conn: members.member_ids(conn, account.id, key, page.limit, page.offset)
        )
        return Response(msgspec.json.encode(ids), media_type=JSON)
    docs = await store.read(
        lambda conn: members.member_documents(conn, account.id, key, page.limit, page.offset)
    )
    return Response(entities.as_array(docs), media_type=JSON)


@get(
    "/segments/{segment_id:str}/changes",
    summary="Profiles entering and leaving a segment (segment_enter / segment_exit)",
    tags=["segments"],
    responses=ITEM_ERRORS,
)
async def segment_changes(
    segment_id: SegmentId,
    account: CurrentAccount,
    store: Injected[Store],
    since: Annotated[
        datetime | None, QueryParameter(description="Changes at or after this moment (UTC)")
    ] = None,
    limit: Limit = entities.DEFAULT_LIMIT,
    offset: Offset = 0,
) -> list[members.SegmentChange]:
    key = _key(segment_id)
    await _one(store, account.id, key)
    page = entities.Page.of(limit, offset, None)
    return await store.read(
        lambda conn: members.changes(conn, account.id, key, utc(since), page.limit, page.offset)
    )


@post(
    "/segments/{segment_id:str}/export",
    status_code=202,
    summary="Add a segment's members to a static list (made if new), in steps the worker applies",
    tags=["segments"],
    responses=ITEM_ERRORS,
    opt={BODY_TYPE: "patron.profiles.segments.rules:Export"},
)
async def export_segment(
    request: Request[Any, Any, Any], segment_id: SegmentId, account: CurrentAccount, store: Injected[Store]
) -> Exporting:
    key = _key(segment_id)
    body = decode(await read_json(request), _export)
    job = await store.write(lambda conn: segments.export(conn, account.id, key, body.list_id, now()))
    if job is None:
        raise NotFound.at("segment_id", NOT_FOUND)
    return Exporting(body.list_id, job.size)


HANDLERS = [
    list_segments,
    create_segment,
    read_segment,
    update_segment,
    delete_segment,
    segment_profiles,
    segment_changes,
    export_segment,
]
