"""The query parameters of every listing: ``limit`` and ``offset``, one rule for all of them."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

#: A page's size: below 1 is a 400 naming ``limit``; above the listing's most (250 for records, as
#: Ometria's), the listing reads its most.
Limit = Annotated[
    int, QueryParameter(ge=1, description="Records per page: default 10, at least 1; above 250 reads 250")
]
Offset = Annotated[int, QueryParameter(ge=0, le=10**18, description="Index of the first record")]
