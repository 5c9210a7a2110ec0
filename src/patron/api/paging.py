"""The query parameters of every listing: ``limit`` and ``offset``, one rule for all of them, and an
empty parameter read as absent."""

from __future__ import annotations

from typing import Annotated

from litestar.enums import ScopeType
from litestar.params import QueryParameter
from litestar.types import ASGIApp, Receive, Scope, Send

#: A page's size: below 1 is a 400 naming ``limit``; above the listing's most (250 for records, as
#: Ometria's), the listing reads its most.
Limit = Annotated[
    int, QueryParameter(ge=1, description="Records per page: default 10, at least 1; above 250 reads 250")
]
Offset = Annotated[int, QueryParameter(ge=0, le=10**18, description="Index of the first record")]


def without_empty(query: bytes) -> bytes:
    """A query string without its empty parameters (``since=``, or a bare ``since``)."""
    return b"&".join(pair for pair in query.split(b"&") if pair and not pair.endswith(b"=") and b"=" in pair)


class EmptyParameters:
    """Around the app: an empty query parameter of a ``GET`` under ``/v2`` is absent, as clients mean
    when they send every filter, set or not (``/v2/unsubscribes?since=&before=&type=``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["method"] == "GET" and scope["path"].startswith("/v2/"):
            query = scope.get("query_string", b"")
            if query:
                scope["query_string"] = without_empty(query)
        await self.app(scope, receive, send)
