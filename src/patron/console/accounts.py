"""The console's accounts page (each account the operator may see, at a glance), an account's
dashboard (its overview and the integration check's verdict and rules), and a rule's samples."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import PathParameter, QueryParameter
from sqlalchemy import Connection

from patron import accounts, operators, report
from patron.api.edge import Injected
from patron.api.report import COMPUTING
from patron.console import activity, reads
from patron.console.render import page
from patron.console.session import PATH, Signed
from patron.store import Store

AccountHash = Annotated[str, PathParameter(max_length=16)]


@get(f"{PATH}/", include_in_schema=False)
async def account_list(session: Signed, store: Injected[Store]) -> Response[str]:
    moment = accounts.now()

    def read(conn: Connection) -> list[reads.Overview]:
        granted = [accounts.get_account(conn, h) for h in session.operator.accounts]
        return reads.overviews(conn, granted, moment)

    return page("accounts.html", "Accounts", session=session, overviews=await store.read(read))


@get(f"{PATH}/accounts/{{account_hash:str}}", include_in_schema=False)
async def dashboard(account_hash: AccountHash, session: Signed, store: Injected[Store]) -> Response[str]:
    """The account at a glance; the integration check loads after the page (it may take seconds)."""
    moment = accounts.now()
    overview = await store.read(lambda conn: reads.granted(conn, session.operator, account_hash, moment))
    return page("dashboard.html", overview.name, session=session, account=overview, charts=activity.TITLES)


@get(f"{PATH}/accounts/{{account_hash:str}}/report", include_in_schema=False)
async def whole_report(
    request: Request[Any, Any, Any],
    account_hash: AccountHash,
    session: Signed,
    store: Injected[Store],
) -> Response[str]:
    """The integration check's verdict and rules: a part of the dashboard (htmx), or a page."""
    moment = accounts.now()

    def read(conn: Connection) -> tuple[accounts.Account, report.Report]:
        account = operators.account_for(session.operator, conn, account_hash)
        return account, report.report(conn, account.id, moment)

    with COMPUTING.hold(account_hash):
        account, found = await store.read(read, report.BUDGET)
    template = "report.html" if request.headers.get("hx-request") else "report_page.html"
    return page(template, "Integration check", session=session, account=account, report=found)


@get(f"{PATH}/accounts/{{account_hash:str}}/report/{{rule:str}}", include_in_schema=False)
async def rule_samples(
    account_hash: AccountHash,
    rule: Annotated[str, PathParameter(max_length=100)],
    session: Signed,
    store: Injected[Store],
    offset: Annotated[int, QueryParameter(ge=0)] = 0,
) -> Response[str]:
    moment = accounts.now()

    def read(conn: Connection) -> tuple[accounts.Account, report.Finding]:
        account = operators.account_for(session.operator, conn, account_hash)
        found = report.one(conn, account.id, moment, rule, report.MAX_SAMPLES, offset)
        return account, found

    account, finding = await store.read(read, report.BUDGET)
    return page(
        "rule.html",
        finding.rule,
        session=session,
        account=account,
        finding=finding,
        offset=offset,
        page_size=report.MAX_SAMPLES,
    )


HANDLERS = [account_list, dashboard, whole_report, rule_samples]
