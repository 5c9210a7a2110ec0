"""RFC 9457 problem details: the one shape of every error Patron answers with, and the one place that
answers each kind of :class:`patron.errors.PatronError` (:data:`STATUS`), Litestar's own errors and the
store's."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from patron.api.observe import CLIENT_CLOSED, DISCONNECTED, THROTTLED
from patron.errors import (
    RETRY_AFTER,
    Conflict,
    FieldError,
    Forbidden,
    Invalid,
    Later,
    NotFound,
    PatronError,
    TooMany,
    Unavailable,
)
from patron.ingest.queue import BacklogFull
from patron.records.validate import in_words
from patron.store import ReadTimeout, StoreUnavailable

log = logging.getLogger("patron.http")

T = TypeVar("T")
PROBLEM_JSON = "application/problem+json"
NOT_AUTHORISED = "API key is not authorised to access this resource"


class Problem(msgspec.Struct, omit_defaults=True):
    title: str
    status: int
    detail: str
    type: str = "about:blank"
    request_id: str | None = None
    errors: list[FieldError] | None = None


#: How each kind of error is answered (the first of an error's classes found here; ``ProblemError``
#: says its own). An error of no kind here is a bug: a 500.
STATUS: dict[type[PatronError], HTTPStatus] = {
    Invalid: HTTPStatus.BAD_REQUEST,
    Forbidden: HTTPStatus.FORBIDDEN,
    NotFound: HTTPStatus.NOT_FOUND,
    Conflict: HTTPStatus.CONFLICT,
    TooMany: HTTPStatus.TOO_MANY_REQUESTS,
    Unavailable: HTTPStatus.SERVICE_UNAVAILABLE,
}


class ProblemError(PatronError):
    """Raised in the HTTP layer to answer with a problem of a given ``status`` (what only HTTP says:
    a key that opens nothing, a media type not taken)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail, errors=errors or (), headers=headers)
        self.status = status


def status_of(exc: PatronError) -> int | None:
    """The status ``exc`` is answered with (None: it is of no known kind)."""
    if isinstance(exc, ProblemError):
        return exc.status
    return next((int(STATUS[kind]) for kind in type(exc).__mro__ if kind in STATUS), None)


def field_problem(status: int, field: str, detail: str) -> ProblemError:
    """A problem about one named field or parameter."""
    return ProblemError(status, f"{field}: {detail}", errors=[FieldError(field, detail)])


def or_404(found: T | None, field: str, detail: str) -> T:
    """``found``, or a 404 problem about ``field`` when there is nothing."""
    if found is None:
        raise NotFound.at(field, detail)
    return found


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    body = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        request_id=request.scope.get("state", {}).get("request_id"),
        errors=errors,
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_errors(request: Request[Any, Any, Any], exc: ValidationException) -> list[FieldError]:
    found: list[FieldError] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            name = _wire_name(request, str(item.get("key") or item.get("source") or "request"))
            found.append(FieldError(name, in_words(str(item.get("message", "is not valid")))))
    return found


def _wire_name(request: Request[Any, Any, Any], name: str) -> str:
    """A handler parameter as the client spells it (``updateSince`` for ``update_since``)."""
    try:
        definition = request.route_handler.parsed_fn_signature.parameters[name].kwarg_definition
    except (AttributeError, KeyError):
        return name
    alias = getattr(definition, "name", None) or getattr(definition, "query", None)
    return alias if isinstance(alias, str) else name


def on_patron_error(request: Request[Any, Any, Any], exc: PatronError) -> Response[Problem]:
    """Every refusal: its status by kind, its detail, its fields, and when to retry what may succeed
    later."""
    status = status_of(exc)
    if status is None:
        return on_unexpected(request, exc)
    headers = dict(exc.headers)
    if isinstance(exc, Later):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, TooMany):  # why, for the metrics (the guard has said so of a rate limit)
        request.scope["state"].setdefault(THROTTLED, "queue_full" if isinstance(exc, BacklogFull) else "busy")
    return problem_response(request, status, exc.detail, exc.errors or None, headers)


def on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    headers = dict(exc.headers or {})
    if isinstance(exc, ValidationException):
        errors = _validation_errors(request, exc)
        detail = "; ".join(f"{e.path}: {e.message}" for e in errors) or "the request is not valid"
        return problem_response(request, status, detail, errors or None, headers)
    if status == HTTPStatus.NOT_FOUND:
        detail = f"no resource at {request.url.path}"
    elif status == HTTPStatus.METHOD_NOT_ALLOWED:
        detail = f"{request.method} is not allowed on {request.url.path}"
    elif status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
        cap = request.app.request_max_body_size
        detail = f"body: the request body is larger than the {cap:,}-byte cap"
        return problem_response(request, status, detail, [FieldError("body", detail)], headers)
    elif status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        gone = request.state.get(DISCONNECTED)
        return on_unexpected(request, exc) if gone is None else on_disconnected(request, gone)
    else:
        detail = exc.detail or HTTPStatus(status).phrase
    return problem_response(request, status, detail, None, headers)


def on_disconnected(request: Request[Any, Any, Any], status: int) -> Response[Problem]:
    """The body could not be read: its connection ended, closed by the client (499) or by the server
    for a body that came too late (408). Nobody reads this answer; the log line and metrics do."""
    title = "Client Closed Request" if status == CLIENT_CLOSED else HTTPStatus(status).phrase
    body = Problem(
        title=title,
        status=status,
        detail="the connection ended before the request's body arrived",
        request_id=request.state.get("request_id"),
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON)


def on_store_unavailable(request: Request[Any, Any, Any], exc: StoreUnavailable) -> Response[Problem]:
    log.error("storage unavailable", extra={"request_id": request.state.get("request_id"), "error": str(exc)})
    detail = "storage is unavailable; nothing was stored, retry later"
    headers = {"Retry-After": str(RETRY_AFTER)}
    return problem_response(request, HTTPStatus.SERVICE_UNAVAILABLE, detail, headers=headers)


def on_read_timeout(request: Request[Any, Any, Any], exc: ReadTimeout) -> Response[Problem]:
    """A read past its budget was cancelled: the client may retry later (or ask for less)."""
    log.warning("read cancelled", extra={"request_id": request.state.get("request_id"), "budget": exc.budget})
    detail = f"{exc}; nothing was changed, retry later or ask for a smaller page"
    headers = {"Retry-After": str(RETRY_AFTER)}
    return problem_response(request, HTTPStatus.SERVICE_UNAVAILABLE, detail, headers=headers)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    request_id = request.state.get("request_id")
    log.error("unexpected failure", exc_info=exc, extra={"request_id": request_id})
    detail = f"an unexpected error occurred; quote request id {request_id} when reporting it"
    return problem_response(request, HTTPStatus.INTERNAL_SERVER_ERROR, detail)


#: The store's errors are ``errors.Unavailable``, answered with their own words and log lines (Litestar
#: picks the closest class).
EXCEPTION_HANDLERS: Any = {
    PatronError: on_patron_error,
    HTTPException: on_http_exception,
    StoreUnavailable: on_store_unavailable,
    ReadTimeout: on_read_timeout,
    Exception: on_unexpected,
}


def _spec(description: str) -> Any:
    from litestar.openapi import ResponseSpec

    return ResponseSpec(
        data_container=Problem, description=description, media_type=PROBLEM_JSON, generate_examples=False
    )


#: The problem responses every authenticated route may give, for its OpenAPI ``responses``.
ERRORS: dict[int, Any] = {
    400: _spec("The request is not valid; `errors` names each offending field or parameter"),
    403: _spec(f"{NOT_AUTHORISED} (none, revoked or expired), or a read-only key sent a write"),
    429: _spec("Over the account's rate limit for this endpoint class; nothing was done"),
    500: _spec("An unexpected failure; the `request_id` also appears in the server's log"),
    503: _spec("Storage is unavailable, or a read ran past its time budget; nothing was changed"),
}
#: The same, for routes that name one object, which may not exist.
ITEM_ERRORS: dict[int, Any] = {**ERRORS, 404: _spec("No such object in this account")}
#: ... for a route that creates an object under an id the caller chooses.
CREATE_ERRORS: dict[int, Any] = {**ERRORS, 409: _spec("An object with this id exists already")}
#: ... for a route that adds an object of which an account may have only so many.
BOUNDED_ERRORS: dict[int, Any] = {**ERRORS, 409: _spec("The account has as many as it may have already")}
