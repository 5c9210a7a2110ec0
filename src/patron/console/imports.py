"""The console's Imports pages: an account's push requests, newest first (filtered by record type and
outcome, 50 a page), and one request: its records as accepted, its errors with their paths, and links
to what was stored from it."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, get
from litestar.params import PathParameter, QueryParameter
from sqlalchemy import Connection

from patron import accounts, operators
from patron.api.edge import Injected
from patron.console import pushes
from patron.console.accounts import AccountHash
from patron.console.render import page
from patron.console.session import PATH, Signed
from patron.errors import NotFound
from patron.store import Store

RequestId = Annotated[str, PathParameter(max_length=36, pattern=r"^[0-9a-f-]{1,36}$")]
Choice = Annotated[str, QueryParameter(max_length=16, pattern=r"^[a-z_]*$")]


def account_path(account_hash: str) -> str:
    return f"{PATH}/accounts/{account_hash}"


def import_url(account_hash: str, request_id: str) -> str:
    return f"{account_path(account_hash)}/imports/{request_id}"


def profile_url(account_hash: str, profile: str) -> str:
    """A customer's page (the Customers pages)."""
    return f"{account_path(account_hash)}/customers/{profile}"


def stored_url(account_hash: str, record: pushes.Record) -> str | None:
    """The page of what was stored from ``record``: a product's in the catalogue, the profile of a
    contact, an order or a custom event."""
    if not record.stored or record.key is None:
        return None
    if record.record_type == "product":
        return f"{account_path(account_hash)}/catalogue/{record.key[-1]}"
    return profile_url(account_hash, record.profile) if record.profile else None


@get(f"{PATH}/accounts/{{account_hash:str}}/imports", include_in_schema=False)
async def import_list(
    account_hash: AccountHash,
    session: Signed,
    store: Injected[Store],
    kind: Annotated[str, QueryParameter(name="type", max_length=16, pattern=r"^[a-z_]*$")] = "",
    outcome: Choice = "",
    before: Annotated[int | None, QueryParameter(ge=1)] = None,
) -> Response[str]:
    record_type = kind if kind in pushes.TYPES else None
    chosen = outcome if outcome in pushes.OUTCOMES else None

    def read(conn: Connection) -> tuple[accounts.Account, pushes.BatchPage]:
        account = operators.account_for(session.operator, conn, account_hash)
        found = pushes.batches(conn, account.id, record_type, chosen, before)
        return account, found

    account, found = await store.read(read)
    return page(
        "imports.html",
        "Imports",
        session=session,
        account=account,
        found=found,
        types=pushes.TYPES,
        outcomes=pushes.OUTCOMES,
        type=record_type or "",
        outcome=chosen or "",
        before=before,
    )


@get(f"{PATH}/accounts/{{account_hash:str}}/imports/{{request_id:str}}", include_in_schema=False)
async def import_request(
    account_hash: AccountHash, request_id: RequestId, session: Signed, store: Injected[Store]
) -> Response[str]:
    def read(conn: Connection) -> tuple[accounts.Account, pushes.Request | None]:
        account = operators.account_for(session.operator, conn, account_hash)
        return account, pushes.request(conn, account.id, request_id)

    account, found = await store.read(read)
    if found is None:
        raise NotFound.at("request_id", f"no push request {request_id!r} in this account")
    links = [stored_url(account_hash, record) for record in found.records]
    return page(
        "imports_request.html",
        f"Push request {request_id}",
        session=session,
        account=account,
        found=found,
        links=links,
        max_errors=pushes.MAX_ERRORS,
    )


HANDLERS = [import_list, import_request]
