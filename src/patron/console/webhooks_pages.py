"""The console's webhooks: an account's endpoints (URL, event types, state and why, pending events),
an endpoint's page with its delivery log (newest first, 50 a page), and an admin's actions: create
one (its secret shown on the answer to the form only, never again), enable or disable it, delete it
(confirmed) and replay a time range of its events, through the same functions as ``/v2/webhooks``
(``patron.webhooks.endpoints``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, get_args

import msgspec
from litestar import Request, Response, get, post
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect
from sqlalchemy import Connection

from patron import accounts, operators, replays
from patron.api.body import decode
from patron.api.edge import Injected
from patron.api.problems import ProblemError, status_of
from patron.config import Webhooks
from patron.console import webhook_reads
from patron.console.accounts import AccountHash
from patron.console.render import page
from patron.console.session import PATH, Signed, require
from patron.errors import Conflict, Invalid, NotFound
from patron.store import Store
from patron.webhooks import endpoints
from patron.webhooks.requests import EndpointUpdate, EventType, NewEndpoint, Replay

WebhookId = Annotated[str, PathParameter(pattern=r"^ep_[0-9a-f]{1,28}$", max_length=32)]
HOOKS = f"{PATH}/accounts/{{account_hash:str}}/webhooks"
ONE = f"{HOOKS}/{{webhook_id:str}}"
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
_new = msgspec.json.Decoder(NewEndpoint)
#: What the endpoint's page says after an action (``?done=``).
DONE = {
    "enabled": "The endpoint is enabled: it delivers the events it kept.",
    "disabled": "The endpoint is disabled: its events are kept.",
}


def _url(account_hash: str, webhook_id: str = "") -> str:
    return f"{PATH}/accounts/{account_hash}/webhooks" + (f"/{webhook_id}" if webhook_id else "")


def _missing(webhook_id: str) -> NotFound:
    return NotFound.at("webhook_id", f"no webhook endpoint {webhook_id!r} in this account")


async def _form(request: Request[Any, Any, Any]) -> tuple[dict[str, str], list[str]]:
    """The form's single fields (the first of each) and its event types, as given: the checks are
    the API's (the body's size is capped before it is read)."""
    form = await request.form()
    names = ("csrf", "url", "description", "max_concurrency", "since", "until", "confirm")
    single = {name: str(form.get(name, "")) for name in names}
    types = [str(value) for value in form.getall("event_types")] if "event_types" in form else []
    return single, types


def _moment(name: str, text: str) -> datetime:
    """A form's moment (a ``datetime-local`` input, read as UTC, or ISO 8601 with an offset)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Invalid.at(name, "is not a date and time (2026-12-06T08:30)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _list_page(
    store: Store, session: Signed, account_hash: str, *, status: int = 200, **extra: Any
) -> Response[str]:
    def read(conn: Connection) -> tuple[accounts.Account, list[webhook_reads.Endpoint]]:
        account = operators.account_for(session.operator, conn, account_hash)
        return account, webhook_reads.hooks(conn, account.id)

    account, found = await store.read(read)
    return page(
        "webhooks.html",
        "Webhooks",
        status=status,
        session=session,
        account=account,
        hooks=found,
        event_types=EVENT_TYPES,
        most_counted=webhook_reads.MOST_COUNTED,
        admin=session.operator.may("admin"),
        **{"problem": None, "given": {}, "chosen": [], **extra},
    )


@get(HOOKS, include_in_schema=False)
async def webhooks_list(account_hash: AccountHash, session: Signed, store: Injected[Store]) -> Response[str]:
    return await _list_page(store, session, account_hash)


async def _hook_page(
    store: Store,
    session: Signed,
    account_hash: str,
    webhook_id: str,
    before: int | None = None,
    *,
    status: int = 200,
    **extra: Any,
) -> Response[str]:
    def read(conn: Connection) -> tuple[accounts.Account, webhook_reads.Endpoint, Any]:
        account = operators.account_for(session.operator, conn, account_hash)
        found = webhook_reads.hook(conn, account.id, webhook_id)
        if found is None:
            raise _missing(webhook_id)
        attempts = webhook_reads.attempts_page(conn, account.id, webhook_id, before)
        return account, found, attempts

    account, found, (attempts, older) = await store.read(read)
    return page(
        "webhook.html",
        f"Webhook endpoint {webhook_id}",
        status=status,
        session=session,
        account=account,
        hook=found,
        attempts=attempts,
        older=older,
        before=before,
        most_counted=webhook_reads.MOST_COUNTED,
        admin=session.operator.may("admin"),
        **{"secret": None, "done": None, "problem": None, "given": {}, **extra},
    )


@post(HOOKS, include_in_schema=False, status_code=201)
async def create(
    request: Request[Any, Any, Any],
    account_hash: AccountHash,
    checked: Signed,
    store: Injected[Store],
    webhooks: Injected[Webhooks],
) -> Response[str]:
    """A new endpoint, its secret shown on this answer only (as ``POST /v2/webhooks``); a bad field
    shows its problem and changes nothing."""
    require(checked, "admin")
    given, chosen = await _form(request)
    body: dict[str, Any] = {"url": given["url"].strip(), "event_types": chosen}
    if given["description"].strip():
        body["description"] = given["description"].strip()
    concurrency = given["max_concurrency"].strip()
    if concurrency:
        body["max_concurrency"] = int(concurrency) if concurrency.isdigit() else concurrency
    try:
        new = decode(msgspec.json.encode(body), _new)
        url = await asyncio.to_thread(endpoints.checked_url, new.url, webhooks.allow_networks)

        def save(conn: Connection) -> endpoints.Endpoint:
            account = operators.account_for(checked.operator, conn, account_hash)
            return endpoints.create(conn, account.id, new, url, accounts.now())

        made = await store.write(save)
    except (Invalid, Conflict, ProblemError) as exc:
        status = status_of(exc) or 400
        return await _list_page(
            store, checked, account_hash, status=status, problem=exc.detail, given=given, chosen=chosen
        )
    secret = made.secret if isinstance(made.secret, str) else None
    return await _hook_page(store, checked, account_hash, made.id, status=201, secret=secret)


@get(ONE, include_in_schema=False)
async def one_hook(
    account_hash: AccountHash,
    webhook_id: WebhookId,
    session: Signed,
    store: Injected[Store],
    before: Annotated[int | None, QueryParameter(ge=1)] = None,
    done: Annotated[str, QueryParameter(max_length=20)] = "",
) -> Response[str]:
    return await _hook_page(store, session, account_hash, webhook_id, before, done=DONE.get(done))


async def _switch(
    account_hash: str, webhook_id: str, checked: Signed, store: Store, enabled: bool
) -> Response[Any]:
    require(checked, "admin")

    def switch(conn: Connection) -> endpoints.Endpoint:
        account = operators.account_for(checked.operator, conn, account_hash)
        return endpoints.change(
            conn, account.id, webhook_id, EndpointUpdate(enabled=enabled), None, accounts.now()
        )

    await store.write(switch)
    done = "enabled" if enabled else "disabled"
    return Redirect(f"{_url(account_hash, webhook_id)}?done={done}", status_code=303)


@post(f"{ONE}/enable", include_in_schema=False, status_code=303)
async def enable(
    account_hash: AccountHash, webhook_id: WebhookId, checked: Signed, store: Injected[Store]
) -> Response[Any]:
    """Enable the endpoint (its failures forgotten; it delivers the events it kept)."""
    return await _switch(account_hash, webhook_id, checked, store, True)


@post(f"{ONE}/disable", include_in_schema=False, status_code=303)
async def disable(
    account_hash: AccountHash, webhook_id: WebhookId, checked: Signed, store: Injected[Store]
) -> Response[Any]:
    """Disable the endpoint: nothing is delivered to it; its events are kept for later."""
    return await _switch(account_hash, webhook_id, checked, store, False)


@post(f"{ONE}/replay", include_in_schema=False, status_code=200)
async def replay(
    request: Request[Any, Any, Any],
    account_hash: AccountHash,
    webhook_id: WebhookId,
    checked: Signed,
    store: Injected[Store],
) -> Response[str]:
    """Deliver again the endpoint's events of [since, until) (as ``POST /v2/webhooks/{id}/replay``)."""
    require(checked, "admin")
    given, _ = await _form(request)
    try:
        asked = Replay(_moment("since", given["since"]), _moment("until", given["until"]))
    except (Invalid, ValueError) as exc:
        detail = exc.detail if isinstance(exc, Invalid) else str(exc)
        return await _hook_page(
            store, checked, account_hash, webhook_id, status=400, problem=detail, given=given
        )

    def again(conn: Connection) -> int:
        account = operators.account_for(checked.operator, conn, account_hash)
        return replays.replay(conn, account.id, webhook_id, asked.since, asked.until, accounts.now())

    count = await store.write(again)
    said = f"{count:,} {'event is' if count == 1 else 'events are'} delivered again."
    return await _hook_page(store, checked, account_hash, webhook_id, done=said, given=given)


@get(f"{ONE}/delete", include_in_schema=False)
async def confirm_delete(
    account_hash: AccountHash, webhook_id: WebhookId, session: Signed, store: Injected[Store]
) -> Response[str]:
    """The question before an endpoint is deleted (nothing is done until it is answered)."""
    require(session, "admin")

    def read(conn: Connection) -> tuple[accounts.Account, webhook_reads.Endpoint]:
        account = operators.account_for(session.operator, conn, account_hash)
        found = webhook_reads.hook(conn, account.id, webhook_id)
        if found is None:
            raise _missing(webhook_id)
        return account, found

    account, found = await store.read(read)
    return page(
        "confirm_webhook_deletion.html",
        "Delete this webhook endpoint?",
        session=session,
        account=account,
        hook=found,
    )


@post(f"{ONE}/delete", include_in_schema=False, status_code=303)
async def delete(
    request: Request[Any, Any, Any],
    account_hash: AccountHash,
    webhook_id: WebhookId,
    checked: Signed,
    store: Injected[Store],
) -> Response[Any]:
    """Delete the endpoint with its events and their log (as ``DELETE /v2/webhooks/{id}``)."""
    require(checked, "admin")
    given, _ = await _form(request)
    if given["confirm"] != "yes":
        return page(
            "problem.html", "Not done", status=409, detail="The deletion was not confirmed: nothing was done."
        )

    def remove(conn: Connection) -> None:
        account = operators.account_for(checked.operator, conn, account_hash)
        endpoints.remove(conn, account.id, webhook_id)

    await store.write(remove)
    return Redirect(_url(account_hash), status_code=303)


HANDLERS = [webhooks_list, create, one_hook, enable, disable, replay, confirm_delete, delete]
