"""Outbound webhooks (an extension): ``/v2/webhooks`` endpoints, their delivery log and replay."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.params import PathParameter

from patron import entities, replays
from patron.accounts import now
from patron.api.auth import BODY_TYPE, CurrentAccount
from patron.api.body import decode, read_json
from patron.api.edge import Injected
from patron.api.entities import JSON
from patron.api.paging import Limit, Offset
from patron.api.problems import BOUNDED_ERRORS, ERRORS, ITEM_ERRORS
from patron.config import Webhooks
from patron.store import Store
from patron.webhooks import endpoints
from patron.webhooks.requests import EndpointUpdate, NewEndpoint, Replay

#: An endpoint's id (``ep_`` and 24 hex digits); any other short id is simply found nowhere (404).
WebhookId = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9_-]+$", max_length=40)]
_new = msgspec.json.Decoder(NewEndpoint)
_update = msgspec.json.Decoder(EndpointUpdate)
_replay = msgspec.json.Decoder(Replay)
TAGS = ["webhooks"]


class Replayed(msgspec.Struct):
    events: int  # how many events are delivered again


async def _checked(url: str, settings: Webhooks) -> str:
    """The URL, if it may be delivered to (its host resolved off the event loop)."""
    return await asyncio.to_thread(endpoints.checked_url, url, settings.allow_networks)


@get("/webhooks", summary="Webhook endpoints (an extension)", tags=TAGS, responses=ERRORS)
async def list_webhooks(account: CurrentAccount, store: Injected[Store]) -> list[endpoints.Endpoint]:
    return await store.read(lambda conn: endpoints.read(conn, account.id))


@post(
    "/webhooks",
    status_code=201,
    summary="Add a webhook endpoint; the answer alone shows its secret (an extension)",
    tags=TAGS,
    responses=BOUNDED_ERRORS,
    opt={BODY_TYPE: "patron.webhooks.requests:NewEndpoint"},
)
async def create_webhook(
    request: Request[Any, Any, Any],
    account: CurrentAccount,
    store: Injected[Store],
    webhooks: Injected[Webhooks],
) -> Response[endpoints.Endpoint]:
    body = decode(await read_json(request), _new)
    url = await _checked(body.url, webhooks)
    made = await store.write(lambda conn: endpoints.create(conn, account.id, body, url, now()))
    return Response(made, status_code=201, media_type=JSON)


@get("/webhooks/{webhook_id:str}", summary="One webhook endpoint", tags=TAGS, responses=ITEM_ERRORS)
async def read_webhook(
    webhook_id: WebhookId, account: CurrentAccount, store: Injected[Store]
) -> endpoints.Endpoint:
    return await store.read(lambda conn: endpoints.one(conn, account.id, webhook_id))


@put(
    "/webhooks/{webhook_id:str}",
    summary="Change a webhook endpoint: its URL, event types, concurrency; enable or disable it",
    tags=TAGS,
    responses=ITEM_ERRORS,
    opt={BODY_TYPE: "patron.webhooks.requests:EndpointUpdate"},
)
async def update_webhook(
    request: Request[Any, Any, Any],
    webhook_id: WebhookId,
    account: CurrentAccount,
    store: Injected[Store],
    webhooks: Injected[Webhooks],
) -> endpoints.Endpoint:
    body = decode(await read_json(request), _update)
    url = None if body.url is msgspec.UNSET else await _checked(body.url, webhooks)
    return await store.write(lambda conn: endpoints.change(conn, account.id, webhook_id, body, url, now()))


@delete(
    "/webhooks/{webhook_id:str}",
    status_code=204,
    summary="Delete a webhook endpoint and its undelivered events",
    tags=TAGS,
    responses=ITEM_ERRORS,
)
async def delete_webhook(webhook_id: WebhookId, account: CurrentAccount, store: Injected[Store]) -> None:
    await store.write(lambda conn: endpoints.remove(conn, account.id, webhook_id))


@get(
    "/webhooks/{webhook_id:str}/deliveries",
    summary="A webhook endpoint's delivery attempts, newest first",
    tags=TAGS,
    responses=ITEM_ERRORS,
)
async def webhook_deliveries(
    webhook_id: WebhookId,
    account: CurrentAccount,
    store: Injected[Store],
    limit: Limit = entities.DEFAULT_LIMIT,
    offset: Offset = 0,
) -> list[endpoints.Attempt]:
    page = entities.Page.of(limit, offset, None)
    return await store.read(
        lambda conn: endpoints.attempts(conn, account.id, webhook_id, page.limit, page.offset)
    )


@post(
    "/webhooks/{webhook_id:str}/replay",
    status_code=202,
    summary="Deliver again the events of a time range (with their webhook-ids)",
    tags=TAGS,
    responses=ITEM_ERRORS,
    opt={BODY_TYPE: "patron.webhooks.requests:Replay"},
)
async def replay_webhook(
    request: Request[Any, Any, Any], webhook_id: WebhookId, account: CurrentAccount, store: Injected[Store]
) -> Replayed:
    body = decode(await read_json(request), _replay)
    count = await store.write(
        lambda conn: replays.replay(conn, account.id, webhook_id, body.since, body.until, now())
    )
    return Replayed(count)


HANDLERS = [
    list_webhooks,
    create_webhook,
    read_webhook,
    update_webhook,
    delete_webhook,
    webhook_deliveries,
    replay_webhook,
]
