"""``GET /v2/unsubscribes``: unsubscribes made outside the API (section 5.8)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import get
from litestar.params import QueryParameter

from patron import entities
from patron.api.auth import CurrentAccount
from patron.api.edge import Injected
from patron.api.lists import utc
from patron.api.paging import Limit, Offset
from patron.api.problems import ERRORS
from patron.profiles import read
from patron.profiles.consent import UnsubscribeType
from patron.store import Store

Moment = Annotated[datetime | None, QueryParameter(description="UTC, YYYY-MM-DDTHH:MM:SS")]


@get(
    "/unsubscribes",
    summary="Unsubscribes (not those made by pushing contacts)",
    tags=["unsubscribes"],
    responses=ERRORS,
)
async def list_unsubscribes(
    account: CurrentAccount,
    store: Injected[Store],
    since: Moment = None,
    before: Moment = None,
    type: Annotated[UnsubscribeType | None, QueryParameter(description="Only this type")] = None,
    limit: Limit = entities.DEFAULT_LIMIT,
    offset: Offset = 0,
) -> list[read.UnsubscribeView]:
    page = entities.Page.of(limit, offset, None)
    return await store.read(
        lambda conn: read.unsubscribes(conn, account.id, page, utc(since), utc(before), type)
    )


HANDLERS = [list_unsubscribes]
