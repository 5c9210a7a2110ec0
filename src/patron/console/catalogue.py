"""The console's catalogue: an account's products, 50 a page in their numbering or found by id
prefix, and a product's page with its document, listings and variants."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, get
from litestar.params import QueryParameter
from sqlalchemy import Connection

from patron import accounts, operators
from patron.api.edge import Injected
from patron.api.entities import IdSegment
from patron.console import pages_reads
from patron.console.accounts import AccountHash
from patron.console.render import page
from patron.console.session import PATH, Signed
from patron.errors import NotFound
from patron.records.fields import MAX_ID_LENGTH
from patron.store import Store

ProductKey = Annotated[str | None, QueryParameter(max_length=MAX_ID_LENGTH, pattern=r"^[^\x00]*$")]


@get(f"{PATH}/accounts/{{account_hash:str}}/catalogue", include_in_schema=False)
async def catalogue(
    account_hash: AccountHash,
    session: Signed,
    store: Injected[Store],
    q: ProductKey = None,
    after: ProductKey = None,
) -> Response[str]:
    prefix = (q or "").strip() or None

    def read(conn: Connection) -> tuple[accounts.Account, pages_reads.Products]:
        account = operators.account_for(session.operator, conn, account_hash)
        found = pages_reads.products_page(conn, account.id, after, prefix)
        return account, found

    account, found = await store.read(read)
    return page(
        "catalogue.html", "Catalogue", session=session, account=account, found=found, q=prefix, after=after
    )


@get(f"{PATH}/accounts/{{account_hash:str}}/catalogue/{{product_id:path}}", include_in_schema=False)
async def product(
    account_hash: AccountHash,
    product_id: IdSegment,
    session: Signed,
    store: Injected[Store],
    after: ProductKey = None,
) -> Response[str]:
    """A product (its id as the path's end, so that ``2024%2F0001`` reads as ``2024/0001``)."""
    wanted = product_id.removeprefix("/")

    def read(conn: Connection) -> tuple[accounts.Account, pages_reads.Product | None]:
        account = operators.account_for(session.operator, conn, account_hash)
        found = pages_reads.product(conn, account.id, wanted, after)
        return account, found

    account, found = await store.read(read)
    if found is None:
        raise NotFound.at("id", f"no product {wanted!r} in this account")
    return page(
        "product.html", f"Product {found.id}", session=session, account=account, product=found, after=after
    )


HANDLERS = [catalogue, product]
