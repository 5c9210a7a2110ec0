"""The dashboard's charts: their numbers as JSON, which ``static/console/charts.js`` draws with uPlot
and lists in a table under each chart."""

from __future__ import annotations

from litestar import Response, get
from sqlalchemy import Connection

from patron import accounts, operators
from patron.api.edge import Injected
from patron.console import activity
from patron.console.accounts import AccountHash
from patron.console.session import PATH, Signed
from patron.store import Store


@get(f"{PATH}/accounts/{{account_hash:str}}/charts", include_in_schema=False)
async def chart_data(
    account_hash: AccountHash, session: Signed, store: Injected[Store]
) -> Response[activity.Charts]:
    moment = accounts.now()

    def read(conn: Connection) -> activity.Charts:
        account = operators.account_for(session.operator, conn, account_hash)
        return activity.charts(conn, account.id, moment)

    return Response(await store.read(read), headers={"Cache-Control": "no-store"})


HANDLERS = [chart_data]
