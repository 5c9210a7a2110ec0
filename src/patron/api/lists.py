"""Lists (Ometria's segments): ``GET /v2/lists``, ``GET /v2/lists/{id}``, ``GET /v2/lists/{id}/changes``,
and, as extensions, ``POST /v2/lists`` and ``PUT /v2/lists/{id}``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post, put
from litestar.params import PathParameter, QueryParameter
from sqlalchemy import Connection

from patron import entities
from patron.accounts import now
from patron.api.auth import BODY_TYPE, CurrentAccount
from patron.api.body import decode, read_json
from patron.api.edge import Injected
from patron.api.entities import JSON
from patron.api.paging import Limit, Offset
from patron.api.problems import CREATE_ERRORS, ERRORS, ITEM_ERRORS
from patron.errors import Conflict, NotFound
from patron.profiles import lists
from patron.profiles.requests import ListUpdate, NewList
from patron.records.fields import ID_PATTERN, MAX_ID_LENGTH
from patron.store import Store

ListId = Annotated[str, PathParameter(pattern=ID_PATTERN, max_length=MAX_ID_LENGTH)]
NOT_FOUND = "List with specified ID was not found"
_new_list = msgspec.json.Decoder(NewList)
_list_update = msgspec.json.Decoder(ListUpdate)


def utc(moment: datetime | None) -> datetime | None:
    """A query's moment in UTC: one without an offset is read as UTC (Ometria's filters are UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def _one(store: Store, account_id: int, list_id: str) -> lists.ListView:
    found = await store.read(lambda conn: lists.read(conn, account_id, list_id=list_id))
    if not found:
        raise NotFound.at("list_id", NOT_FOUND)
    return found[0]


@get("/lists", summary="Lists (segments), a page at a time", tags=["lists"], responses=ERRORS)
async def list_lists(
    account: CurrentAccount,
    store: Injected[Store],
    mode: Annotated[lists.Mode, QueryParameter(description="active (default), all or archived")] = "active",
    limit: Limit = entities.DEFAULT_LIMIT,
    offset: Offset = 0,
) -> list[lists.ListView]:
    page = entities.Page.of(limit, offset, None)
    return await store.read(
        lambda conn: lists.read(conn, account.id, mode=mode, limit=page.limit, offset=page.offset)
    )


@post(
    "/lists",
    status_code=201,
    summary="Create a static list (an extension)",
    tags=["lists"],
    responses=CREATE_ERRORS,
    opt={BODY_TYPE: "patron.profiles.requests:NewList"},
)
async def create_list(
    request: Request[Any, Any, Any], account: CurrentAccount, store: Injected[Store]
) -> Response[lists.ListView]:
    body = decode(await read_json(request), _new_list)

    def create(conn: Connection) -> str | None:
        """The new list's id (None: taken); ``lists.TooManyLists`` when the account has its most."""
        list_id = str(body.id) if body.id is not msgspec.UNSET else lists.next_id(conn, account.id)
        return (
            list_id if lists.create(conn, account.id, list_id, body.title, body.description, now()) else None
        )

    list_id = await store.write(create)
    if list_id is None:
        raise Conflict.at("root > id", f"a list {body.id!r} exists already")
    return Response(await _one(store, account.id, list_id), status_code=201, media_type=JSON)


@get("/lists/{list_id:str}", summary="One list", tags=["lists"], responses=ITEM_ERRORS)
async def read_list(
    list_id: ListId, account: CurrentAccount, store: Injected[Store]
) -> Response[lists.ListView]:
    return Response(await _one(store, account.id, list_id), media_type=JSON)


@put(
    "/lists/{list_id:str}",
    summary="Change a list's details or archive it (an extension)",
    tags=["lists"],
    responses=ITEM_ERRORS,
    opt={BODY_TYPE: "patron.profiles.requests:ListUpdate"},
)
async def update_list(
    request: Request[Any, Any, Any], list_id: ListId, account: CurrentAccount, store: Injected[Store]
) -> Response[lists.ListView]:
    changes = msgspec.structs.asdict(decode(await read_json(request), _list_update))
    changes = {name: value for name, value in changes.items() if value is not msgspec.UNSET}
    found = await store.write(lambda conn: lists.update_details(conn, account.id, list_id, changes, now()))
    if not found:
        raise NotFound.at("list_id", NOT_FOUND)
    return Response(await _one(store, account.id, list_id), media_type=JSON)


@get(
    "/lists/{list_id:str}/changes",
    summary="Profiles entering and leaving a list (list_enter / list_exit)",
    tags=["lists"],
    responses=ITEM_ERRORS,
)
async def list_changes(
    list_id: ListId,
    account: CurrentAccount,
    store: Injected[Store],
    since: Annotated[
        datetime | None, QueryParameter(description="Changes at or after this moment (UTC)")
    ] = None,
    limit: Limit = entities.DEFAULT_LIMIT,
    offset: Offset = 0,
) -> list[lists.ListChange]:
    await _one(store, account.id, list_id)
    page = entities.Page.of(limit, offset, None)
    return await store.read(
        lambda conn: lists.changes(conn, account.id, list_id, utc(since), page.limit, page.offset)
    )


HANDLERS = [list_lists, create_list, read_list, update_list, list_changes]
