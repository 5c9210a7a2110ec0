"""The guard on every ``/v2`` route: the API key names the account, then the account's rate limit."""

from __future__ import annotations

from typing import Any, TypeAlias

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import SkipValidation
from litestar.types import Message, Scope

from patron.accounts import Account
from patron.api.edge import edge_of
from patron.api.observe import RATE_CLASS_STATE, THROTTLED
from patron.api.problems import NOT_AUTHORISED, ProblemError
from patron.ratelimits import Decision
from patron.store import fair

AUTH_HEADER = "X-Ometria-Auth"
#: The endpoint class a handler counts against, set with ``opt={RATE_CLASS: "push"}``; default "data".
RATE_CLASS = "rate_class"
#: Handlers that read their body raw declare its type for the OpenAPI document, by name (Litestar copies
#: ``opt``): ``module:name``, or a name in ``patron.records.types`` (``opt={BODY_TYPE: "Contact"}``).
BODY_TYPE = "body_type"
#: Where the guard leaves the request's quota headers in the scope's state.
RATE_HEADERS = "rate_headers"
#: What a read-only key may do: read.
READS = frozenset({"GET", "HEAD"})
READ_ONLY = "this API key is read-only: it may only read (GET and HEAD)"
#: A handler parameter ``account: CurrentAccount`` receives the account the request's key belongs to.
CurrentAccount: TypeAlias = NamedDependency[SkipValidation[Account]]


async def authorise(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Resolve ``X-Ometria-Auth`` to an account (403 if it names none, or no more: revoked or expired),
    refuse a read-only key anything but a read (403), then count the request (429)."""
    key = connection.headers.get(AUTH_HEADER)
    edge = edge_of(connection.app)
    access = await edge.key_resolver.resolve(key) if key else None
    if access is None:
        raise ProblemError(403, NOT_AUTHORISED)
    method = connection.scope.get("method", "GET")
    if access.read_only and method not in READS:
        raise ProblemError(403, f"{READ_ONLY}: {method} {connection.url.path} changes data")
    account = access.account
    connection.state.account = account
    fair.owner.set(account.id)  # the request's reads queue as this account's, beside the others'
    endpoint_class = handler.opt.get(RATE_CLASS, "data")
    limit = account.effective_limits[endpoint_class]
    decision = await edge.limiter.hit(account.hash, endpoint_class, limit)
    quota = rate_headers(endpoint_class, decision)
    state = connection.scope["state"]
    state[RATE_HEADERS] = quota
    state[RATE_CLASS_STATE] = endpoint_class  # for the metrics of a 429
    if not decision.allowed:
        state[THROTTLED] = "rate_limit"
        raise ProblemError(
            429,
            f"rate limit of {limit} for {endpoint_class} requests exceeded;"
            f" nothing was done, retry after {decision.reset_after} s",
            headers={
                "Retry-After": str(decision.reset_after),
                "RateLimit-Limit": str(decision.limit),
                "RateLimit-Remaining": str(decision.remaining),
                "RateLimit-Reset": str(decision.reset_after),
                **quota,
            },
        )


def rate_headers(endpoint_class: str, decision: Decision) -> dict[str, str]:
    """The IETF ``RateLimit-Policy`` and ``RateLimit`` fields of a request's quota (none when the
    account's limit for the class is ``unlimited``): the policy is named after the endpoint class,
    ``q`` requests per ``w`` seconds, ``r`` of them left for ``t`` more seconds."""
    if not decision.window:
        return {}
    return {
        "RateLimit-Policy": f'"{endpoint_class}";q={decision.limit};w={decision.window}',
        "RateLimit": f'"{endpoint_class}";r={decision.remaining};t={decision.reset_after}',
    }


async def send_rate_headers(message: Message, scope: Scope) -> None:
    """The app's ``before_send`` hook: every answer to a request the guard counted carries its quota."""
    if message["type"] == "http.response.start":
        quota: dict[str, str] | None = scope.get("state", {}).get(RATE_HEADERS)
        if quota:
            present = {name.lower() for name, _ in message.get("headers", [])}
            added = [
                (n.lower().encode(), v.encode())
                for n, v in quota.items()
                if n.lower().encode() not in present
            ]
            message["headers"] = [*message.get("headers", []), *added]


def current_account(request: Request[Any, Any, Any]) -> Account:
    """The dependency ``account``: the account the request's key belongs to."""
    account: Account = request.state.account
    return account
