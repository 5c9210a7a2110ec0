"""Reading and writing single entities: contacts, orders, products and custom events (reference §3).

Reads come straight from the stored documents. Writes go through the same validation and queue as
``/v2/push``; a single-record POST whose record is invalid gets a 400 and stores nothing.
"""

from __future__ import annotations

import reprlib
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromQuery, PathParameter, QueryParameter

from patron import entities
from patron.accounts import Account
from patron.api.auth import BODY_TYPE, CurrentAccount
from patron.api.body import content_type_warnings, decode, read_json
from patron.api.edge import Injected
from patron.api.paging import Limit, Offset
from patron.api.problems import ERRORS, ITEM_ERRORS
from patron.api.push import accept
from patron.errors import Invalid, NotFound
from patron.ingest.push import PushReply
from patron.ingest.submit import Submitter
from patron.records.fields import (
    COLLECTION_PATTERN,
    ID_PATTERN,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    NO_NUL_PATTERN,
)
from patron.records.types import Contact, CustomEvent, Order, Product
from patron.store import Store
from patron.tracking import read as tracking

JSON = "application/json"
#: The path segments that name a record, with the checks of the record's own fields (an id segment
#: is ``{id:path}``, so that ``2024%2F0001`` reads as ``2024/0001``, and arrives with a leading "/").
CollectionSegment = Annotated[str, PathParameter(pattern=COLLECTION_PATTERN, max_length=MAX_NAME_LENGTH)]
IdSegment = Annotated[str, PathParameter(pattern=ID_PATTERN, max_length=MAX_ID_LENGTH + 1)]
#: A query filter's value (stored text never holds a NUL, so a filter with one is refused).
Filter = Annotated[str | None, QueryParameter(pattern=NO_NUL_PATTERN)]
Since = Annotated[
    datetime | None,
    QueryParameter(description="Records stored or changed at or after this time, ISO 8601 (an extension)"),
]
OrderBy = Annotated[
    Literal["timestamp_update"] | None,
    QueryParameter(description="Sort by last update instead of the internal id"),
]
_object = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.Encoder().encode


async def _page(
    store: Store,
    account: Account,
    record_type: str,
    limit: int,
    offset: int,
    orderby: str | None,
    where: entities.Filters = (),
) -> Response[bytes]:
    page = entities.Page.of(limit, offset, orderby)
    docs = await store.read(lambda conn: entities.list_documents(conn, record_type, account.id, page, where))
    return Response(entities.as_array(docs), media_type=JSON)


def _last(segment: str) -> str:
    """An id from the end of an item URL (``{id:path}``, so that ``2024%2F0001`` reads as ``2024/0001``)."""
    return segment.removeprefix("/")


async def _one(store: Store, account: Account, record_type: str, *key: str) -> Response[bytes]:
    key = (*key[:-1], _last(key[-1]))
    doc = await store.read(lambda conn: entities.get_document(conn, record_type, account.id, *key))
    if doc is None:
        what = " ".join(key)
        raise NotFound.at("id", f"no {record_type.replace('_', ' ')} {what!r} in this account")
    return Response(doc.encode(), media_type=JSON)


async def _post_one(
    request: Request[Any, Any, Any], submit: Submitter, account: Account, record_type: str, **from_path: str
) -> PushReply:
    """One record from the body, its type and key taken from the URL (and checked against the body)."""
    # Fields stay raw JSON, so that only the record's own decoder reads (and names) its values.
    record = decode(await read_json(request), _object)
    if "id" in from_path:
        from_path["id"] = _last(from_path["id"])
    for name, value in {"@type": record_type, **from_path}.items():
        if name not in record:
            record[name] = msgspec.Raw(_encode(value))
            continue
        given = msgspec.json.decode(record[name])
        if not isinstance(given, str | int) or str(given) != value:
            shown = reprlib.repr(given)
            raise Invalid.at(f"root > {name}", f"is {shown} but the URL says {value!r}")
    notes = content_type_warnings(request)
    reply, _ = await accept(submit, account, _encode([record]), all_or_nothing=True, notes=notes)
    return reply


def response_spec(container: Any) -> dict[int, Any]:
    from litestar.openapi import ResponseSpec

    spec = ResponseSpec(data_container=container, description="Request fulfilled", generate_examples=False)
    return {200: spec, **ITEM_ERRORS}


# contacts ---------------------------------------------------------------------------------------


class Collection(msgspec.Struct):
    collection: str
    count: int


@get(
    "/contacts",
    summary="Contact collections with counts, or contacts by email",
    tags=["contacts"],
    responses=ERRORS,
)
async def list_collections(
    account: CurrentAccount,
    store: Injected[Store],
    email: Filter = None,
    limit: Limit = entities.DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Response[Any]:
    if email is not None:
        where = entities.contact_filters(email=email)
        return await _page(store, account, "contact", limit, offset, None, where)
    page = entities.Page.of(limit, offset, None)
    found = await store.read(lambda conn: entities.collections(conn, account.id, page.limit, page.offset))
    return Response([Collection(**c) for c in found], media_type=JSON)


@get(
    "/contacts/{collection:str}",
    summary="Contacts of a collection",
    tags=["contacts"],
    responses=response_spec(list[Contact]),
)
async def list_contacts(
    collection: CollectionSegment,
    account: CurrentAccount,
    store: Injected[Store],
    limit: Limit = entities.DEFAULT_LIMIT,
    offset: Offset = 0,
    orderby: OrderBy = None,
    since: Since = None,
) -> Response[bytes]:
    where = [*entities.contact_filters(collection=collection), *entities.updated_since("contact", since)]
    return await _page(store, account, "contact", limit, offset, orderby, where)


@get(
    "/contacts/{collection:str}/{contact_id:path}",
    summary="One contact",
    tags=["contacts"],
    responses=response_spec(Contact),
)
async def read_contact(
    collection: CollectionSegment, contact_id: IdSegment, account: CurrentAccount, store: Injected[Store]
) -> Response[bytes]:
    return await _one(store, account, "contact", collection, contact_id)


@post(
    "/contacts/{collection:str}/{contact_id:path}",
    status_code=202,
    summary="Create or update one contact",
    tags=["contacts"],
    responses=ERRORS,
    opt={BODY_TYPE: "Contact"},
)
async def write_contact(
    request: Request[Any, Any, Any],
    collection: CollectionSegment,
    contact_id: IdSegment,
    account: CurrentAccount,
    submit: Injected[Submitter],
) -> PushReply:
    return await _post_one(
        request, submit, account, "contact", **{"@collection": collection, "id": contact_id}
    )


# orders -----------------------------------------------------------------------------------------


@get("/orders", summary="Orders", tags=["orders"], responses=response_spec(list[Order]))
async def list_orders(
    account: CurrentAccount,
    store: Injected[Store],
    limit: Limit = entities.DEFAULT_LIMIT,
    offset: Offset = 0,
    orderby: OrderBy = None,
    since: Since = None,
) -> Response[bytes]:
    return await _page(
        store, account, "order", limit, offset, orderby, entities.updated_since("order", since)
    )


@get("/orders/{order_id:path}", summary="One order", tags=["orders"], responses=response_spec(Order))
async def read_order(order_id: IdSegment, account: CurrentAccount, store: Injected[Store]) -> Response[bytes]:
    """With ``@attribution`` (an extension) when the website tag saw the order confirmed."""
    key = _last(order_id)
    doc = await store.read(lambda conn: tracking.order_with_attribution(conn, account.id, key))
    if doc is None:
        raise NotFound.at("id", f"no order {key!r} in this account")
    return Response(doc.encode(), media_type=JSON)


@post(
    "/orders/{order_id:path}",
    status_code=202,
    summary="Create or update one order",
    tags=["orders"],
    responses=ERRORS,
    opt={BODY_TYPE: "Order"},
)
async def write_order(
    request: Request[Any, Any, Any], order_id: IdSegment, account: CurrentAccount, submit: Injected[Submitter]
) -> PushReply:
    return await _post_one(request, submit, account, "order", id=order_id)


# products ---------------------------------------------------------------------------------------


@get("/products", summary="Products", tags=["products"], responses=response_spec(list[Product]))
async def list_products(
    account: CurrentAccount,
    store: Injected[Store],
    limit: Limit = entities.DEFAULT_LIMIT,
    offset: Offset = 0,
    orderby: OrderBy = None,
    active: FromQuery[bool | None] = None,
    include_variants: Annotated[bool, QueryParameter(name="includeVariants")] = False,
    since: Since = None,
) -> Response[bytes]:
    where = [*entities.product_filters(active, include_variants), *entities.updated_since("product", since)]
    return await _page(store, account, "product", limit, offset, orderby, where)


@get(
    "/products/{product_id:path}", summary="One product", tags=["products"], responses=response_spec(Product)
)
async def read_product(
    product_id: IdSegment, account: CurrentAccount, store: Injected[Store]
) -> Response[bytes]:
    return await _one(store, account, "product", product_id)


@post(
    "/products/{product_id:path}",
    status_code=201,
    summary="Create or update one product",
    tags=["products"],
    responses=ERRORS,
    opt={BODY_TYPE: "Product"},
)
async def write_product(
    request: Request[Any, Any, Any],
    product_id: IdSegment,
    account: CurrentAccount,
    submit: Injected[Submitter],
) -> PushReply:
    return await _post_one(request, submit, account, "product", id=product_id)


# custom events ----------------------------------------------------------------------------------


@get(
    "/custom-events",
    summary="Custom events (an extension)",
    tags=["custom events"],
    responses=response_spec(list[CustomEvent]),
)
async def list_custom_events(
    account: CurrentAccount,
    store: Injected[Store],
    limit: Limit = entities.DEFAULT_LIMIT,
    offset: Offset = 0,
    orderby: OrderBy = None,
    event_type: Filter = None,
    identity_email: Filter = None,
    identity_account_id: Filter = None,
    profile_id: Filter = None,
    since: Since = None,
) -> Response[bytes]:
    where = [
        *entities.event_filters(event_type, identity_email, identity_account_id, profile_id),
        *entities.updated_since("custom_event", since),
    ]
    return await _page(store, account, "custom_event", limit, offset, orderby, where)


@post(
    "/custom-events",
    status_code=202,
    summary="Record one custom event",
    tags=["custom events"],
    responses=ERRORS,
    opt={BODY_TYPE: "CustomEvent"},
)
async def write_custom_event(
    request: Request[Any, Any, Any], account: CurrentAccount, submit: Injected[Submitter]
) -> PushReply:
    return await _post_one(request, submit, account, "custom_event")


HANDLERS = [
    list_collections,
    list_contacts,
    read_contact,
    write_contact,
    list_orders,
    read_order,
    write_order,
    list_products,
    read_product,
    write_product,
    list_custom_events,
    write_custom_event,
]
