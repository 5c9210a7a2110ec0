"""``GET /v2/account`` (an extension): which account a key belongs to, its limits and whether it is
strict."""

from __future__ import annotations

import msgspec
from litestar import get

from patron.api.auth import CurrentAccount
from patron.api.problems import ERRORS


class AccountView(msgspec.Struct):
    name: str
    environment: str
    account_hash: str
    limits: dict[str, str]
    timestamp_created: str
    #: Whether what Patron otherwise reads leniently, with a warning, is refused.
    strict: bool


@get("/account", summary="The account the API key belongs to", tags=["account"], responses=ERRORS)
async def read_account(account: CurrentAccount) -> AccountView:
    return AccountView(
        name=account.name,
        environment=account.environment,
        account_hash=account.hash,
        limits=account.effective_limits,
        timestamp_created=account.created_at.isoformat(),
        strict=account.strict,
    )
