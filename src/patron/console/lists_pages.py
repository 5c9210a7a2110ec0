"""The console's lists: an account's lists with their size and order totals (as the worker keeps
them), and a list's page with its members, 50 a page."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, get
from litestar.params import PathParameter, QueryParameter
from sqlalchemy import Connection

from patron import accounts, operators
from patron.api.edge import Injected
from patron.console import pages_reads
from patron.console.accounts import AccountHash
from patron.console.render import page
from patron.console.session import PATH, Signed
from patron.errors import NotFound
from patron.profiles.lists import ListView
from patron.records.fields import ID_PATTERN, MAX_ID_LENGTH
from patron.store import Store

ListId = Annotated[str, PathParameter(pattern=ID_PATTERN, max_length=MAX_ID_LENGTH)]


@get(f"{PATH}/accounts/{{account_hash:str}}/lists", include_in_schema=False)
async def list_lists(
    account_hash: AccountHash,
    session: Signed,
    store: Injected[Store],
    offset: Annotated[int, QueryParameter(ge=0, le=pages_reads.MAX_OFFSET)] = 0,
) -> Response[str]:
    def read(conn: Connection) -> tuple[accounts.Account, tuple[list[ListView], bool]]:
        account = operators.account_for(session.operator, conn, account_hash)
        return account, pages_reads.lists_page(conn, account.id, offset)

    account, (found, more) = await store.read(read)
    return page(
        "lists.html",
        "Lists",
        session=session,
        account=account,
        lists=found,
        more=more,
        offset=offset,
        page_size=pages_reads.PAGE,
    )


@get(f"{PATH}/accounts/{{account_hash:str}}/lists/{{list_id:str}}", include_in_schema=False)
async def one_list(
    account_hash: AccountHash,
    list_id: ListId,
    session: Signed,
    store: Injected[Store],
    after: Annotated[str | None, QueryParameter(max_length=32)] = None,
) -> Response[str]:
    def read(
        conn: Connection,
    ) -> tuple[accounts.Account, ListView | None, tuple[list[pages_reads.Member], str | None]]:
        account = operators.account_for(session.operator, conn, account_hash)
        found = pages_reads.one_list(conn, account.id, list_id)
        members = pages_reads.members(conn, account.id, list_id, after) if found else ([], None)
        return account, found, members

    account, found, (members, following) = await store.read(read)
    if found is None:
        raise NotFound.at("list_id", f"no list {list_id!r} in this account")
    return page(
        "list.html",
        f"List {found.title or found.id}",
        session=session,
        account=account,
        list=found,
        members=members,
        following=following,
        after=after,
    )


HANDLERS = [list_lists, one_list]
