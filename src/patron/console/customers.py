"""The console's customers pages: a search by email, customer id, phone number or profile id (the
latest updated profiles when nothing is asked), one profile's page (its identities, consent, lists,
stats, orders, timeline, sessions and email clicks), and an admin's actions on it: an export as JSON,
an unsubscribe from email and a GDPR deletion, each through the same domain path as the API's."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, PathParameter, QueryParameter
from litestar.response import Redirect
from sqlalchemy import Connection

from patron import accounts, gdpr, operators
from patron.api.edge import Injected
from patron.console import customer_reads
from patron.console.render import page
from patron.console.session import PATH, Signed, require
from patron.errors import NotFound
from patron.ingest.queue import enqueue_operation
from patron.ingest.submit import Submitter
from patron.profiles import read
from patron.profiles.build import survivor
from patron.profiles.operations import UNSUBSCRIBE
from patron.profiles.requests import Unsubscribe
from patron.records.fields import MAX_MADE_ID_LENGTH
from patron.store import Store

AccountHash = Annotated[str, PathParameter(max_length=16)]
ProfileId = Annotated[str, PathParameter(max_length=MAX_MADE_ID_LENGTH)]
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
CUSTOMERS = f"{PATH}/accounts/{{account_hash:str}}/customers"
ONE = f"{CUSTOMERS}/{{profile_id:str}}"
#: What the page says after an action (``?done=``).
DONE = {
    "unsubscribe": "The unsubscribe is queued: the worker applies it after the pushes before it.",
}


def _url(account_hash: str, profile_id: str = "", action: str = "") -> str:
    url = f"{PATH}/accounts/{account_hash}/customers"
    return url + (f"/{profile_id}" if profile_id else "") + (f"/{action}" if action else "")


def _refused(detail: str) -> Response[str]:
    """An action that cannot be done as asked (409): nothing was changed."""
    return page("problem.html", "Not done", status=409, detail=detail)


def _missing(profile_id: str) -> NotFound:
    return NotFound.at("profile_id", f"no profile {profile_id!r} in this account")


@get(CUSTOMERS, include_in_schema=False)
async def customers(
    account_hash: AccountHash,
    session: Signed,
    store: Injected[Store],
    q: Annotated[str, QueryParameter(max_length=customer_reads.MAX_QUERY)] = "",
) -> Response[str]:
    def lookup(conn: Connection) -> tuple[accounts.Account, list[customer_reads.Found]]:
        account = operators.account_for(session.operator, conn, account_hash)
        found = (
            customer_reads.search(conn, account.id, q)
            if q.strip()
            else customer_reads.recent(conn, account.id)
        )
        return account, found

    account, found = await store.read(lookup)
    return page("customers.html", "Customers", session=session, account=account, q=q, found=found)


@get(ONE, include_in_schema=False)
async def profile(
    account_hash: AccountHash,
    profile_id: ProfileId,
    session: Signed,
    store: Injected[Store],
    done: Annotated[str, QueryParameter(max_length=20)] = "",
) -> Response[Any]:
    def lookup(conn: Connection) -> tuple[accounts.Account, str, customer_reads.Customer | None, str | None]:
        account = operators.account_for(session.operator, conn, account_hash)
        live = survivor(conn, account.id, profile_id)
        if live is None:
            raise _missing(profile_id)
        if live != profile_id:
            return account, live, None, None
        shown = customer_reads.customer(conn, account.id, live)
        email = customer_reads.unsubscribable(conn, account.id, live)
        return account, live, shown, email

    account, live, shown, email = await store.read(lookup)
    if shown is None:  # merged away: its survivor's page
        return Redirect(_url(account_hash, live), status_code=303)
    return page(
        "profile.html",
        shown.profile.get("name") or shown.profile.get("email") or live,
        session=session,
        account=account,
        customer=shown,
        profile_id=live,
        unsubscribable=email,
        admin=session.operator.may("admin"),
        done=DONE.get(done),
    )


@post(f"{ONE}/export", include_in_schema=False, status_code=200)
async def export(
    account_hash: AccountHash, profile_id: ProfileId, checked: Signed, store: Injected[Store]
) -> Response[bytes]:
    """Everything held about the profile's person, as ``GET /v2/profiles/{id}/export`` gives it."""
    require(checked, "admin")

    def lookup(conn: Connection) -> dict[str, Any] | None:
        account = operators.account_for(checked.operator, conn, account_hash)
        return read.export(conn, account.id, profile_id)

    found = await store.read(lookup)
    if found is None:
        raise _missing(profile_id)
    name = f"profile-{found['profile'].get('id', profile_id)}.json"
    return Response(
        msgspec.json.encode(found),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@post(f"{ONE}/unsubscribe", include_in_schema=False)
async def unsubscribe(
    account_hash: AccountHash,
    profile_id: ProfileId,
    checked: Signed,
    submit: Injected[Submitter],
) -> Response[Any]:
    """An operator's unsubscribe (type ``app``, as ``patron unsubscribe``), queued in order with the
    account's pushes."""
    require(checked, "admin")
    request_id, at = str(uuid.uuid4()), accounts.now()

    def queue(conn: Connection, _: int | None) -> tuple[str, bool]:
        account = operators.account_for(checked.operator, conn, account_hash)
        live = survivor(conn, account.id, profile_id)
        if live is None:
            raise _missing(profile_id)
        email = customer_reads.unsubscribable(conn, account.id, live)
        if email is None:
            return live, False
        body = Unsubscribe(email, "app", f"unsubscribed in the console by {checked.operator.email}")
        enqueue_operation(conn, account.id, account.queue_limit, request_id, UNSUBSCRIBE, body, at)
        return live, True

    live, queued = await submit.queue(queue, limit=None)
    if not queued:
        return _refused("This profile has no email address of its own to unsubscribe: nothing was done.")
    return Redirect(_url(account_hash, live) + "?done=unsubscribe", status_code=303)


@get(f"{ONE}/delete", include_in_schema=False)
async def confirm_deletion(
    account_hash: AccountHash, profile_id: ProfileId, session: Signed, store: Injected[Store]
) -> Response[str]:
    """The question before a GDPR deletion (nothing is done until it is answered)."""
    require(session, "admin")

    def lookup(conn: Connection) -> tuple[accounts.Account, dict[str, Any]]:
        account = operators.account_for(session.operator, conn, account_hash)
        doc = read.get_profile(conn, account.id, profile_id)
        if doc is None:
            raise _missing(profile_id)
        return account, msgspec.json.decode(doc)

    account, doc = await store.read(lookup)
    return page(
        "confirm_deletion.html",
        "Delete this customer's data?",
        session=session,
        account=account,
        profile=doc,
    )


@post(f"{ONE}/delete", include_in_schema=False, status_code=202)
async def request_deletion(
    account_hash: AccountHash,
    profile_id: ProfileId,
    checked: Signed,
    store: Injected[Store],
    submit: Injected[Submitter],
    data: Form,
) -> Response[str]:
    """A data deletion request for the profile (and those merged into it), as ``POST
    /v2/data-deletion-requests`` makes one: the worker anonymises it in order with the pushes."""
    require(checked, "admin")
    if data.get("confirm") != "yes":
        return _refused("The deletion was not confirmed: nothing was done.")
    request_id, at = str(uuid.uuid4()), accounts.now()
    comment = f"requested in the console by {checked.operator.email}"

    def queue(conn: Connection, _: int | None) -> gdpr.DeletionView:
        account = operators.account_for(checked.operator, conn, account_hash)
        live = survivor(conn, account.id, profile_id)
        if live is None:
            raise _missing(profile_id)
        body = gdpr.DeletionRequest(identities=[gdpr.DeletionIdentity("profile_id", live)], comment=comment)
        return gdpr.request(conn, account.id, account.queue_limit, request_id, body, at)

    view = await submit.queue(queue, limit=None)
    account = await store.read(lambda conn: operators.account_for(checked.operator, conn, account_hash))
    return page(
        "confirm_deleted.html",
        "Deletion requested",
        status=202,
        session=checked,
        account=account,
        deletion=view,
        profile_id=profile_id,
    )


HANDLERS = [customers, profile, export, unsubscribe, confirm_deletion, request_deletion]
