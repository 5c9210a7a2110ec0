"""``GET /v2/account/report`` (an extension): the integration check, a verdict on whether the account's
stored data is right before it goes live, with every rule's finding; ``?rule=`` reads one rule's
samples a page at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from litestar import get
from litestar.params import QueryParameter

from patron import report
from patron.accounts import now
from patron.api.auth import CurrentAccount
from patron.api.edge import Injected
from patron.api.paging import Offset
from patron.api.problems import ITEM_ERRORS
from patron.errors import TooMany
from patron.store import Store

RuleId = Annotated[
    str | None, QueryParameter(max_length=100, description="One rule's id: its finding alone, paged")
]
SampleLimit = Annotated[
    int,
    QueryParameter(
        ge=1,
        description=f"With rule: samples per page, default {report.SAMPLES}; above {report.MAX_SAMPLES} "
        f"reads {report.MAX_SAMPLES}",
    ),
]


class Computing:
    """The accounts whose report this process is computing: one at a time each, so that an account
    asking again and again holds one of the store's readers, never all of them."""

    def __init__(self) -> None:
        self._accounts: set[str] = set()

    @contextmanager
    def hold(self, account_hash: str) -> Iterator[None]:
        if account_hash in self._accounts:
            raise TooMany(
                "a report of this account is being computed; ask again when it is done", retry_after=5
            )
        self._accounts.add(account_hash)
        try:
            yield
        finally:
            self._accounts.discard(account_hash)


COMPUTING = Computing()


@get(
    "/account/report",
    summary="The integration check: is the account's data right? (an extension)",
    tags=["account"],
    responses=ITEM_ERRORS,
)
async def read_report(
    account: CurrentAccount,
    store: Injected[Store],
    rule: RuleId = None,
    limit: SampleLimit = report.SAMPLES,
    offset: Offset = 0,
) -> report.Report | report.Finding:
    moment, chosen = now(), rule
    with COMPUTING.hold(account.hash):
        if chosen is None:
            return await store.read(lambda conn: report.report(conn, account.id, moment), report.BUDGET)
        return await store.read(
            lambda conn: report.one(conn, account.id, moment, chosen, limit, offset), report.BUDGET
        )


HANDLERS = [read_report]
