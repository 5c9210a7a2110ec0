"""Reading a JSON request body: the one way every write endpoint takes its input.

A body is read as JSON whatever its declared ``Content-Type`` (clients send ``text/plain``, a form's
type, or none at all); a push names a type other than ``application/json`` in a warning
(:func:`content_type_warnings`), and a strict account's requests must declare ``application/json``.
Each failure is a 4xx problem naming what is wrong: a ``charset`` other than UTF-8, or a strict
account's other type (415), bytes that are not UTF-8, JSON that is malformed or nested too deep, or a
value of the wrong shape (400, with its path). Bodies over the size cap never get here: Litestar
refuses them with 413 while reading.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request

from patron.accounts import Account
from patron.api.problems import field_problem
from patron.records.validate import CONTENT_TYPE, FieldWarning, split_error

T = TypeVar("T")
JSON = "application/json"
#: How much of a declared media type a warning quotes.
SHOWN_TYPE = 100


def _content_type(request: Request[Any, Any, Any]) -> tuple[str, str | None]:
    """The request's media type (lower case, ``""`` when none is given) and its charset, if named."""
    media_type, _, params = request.headers.get("content-type", "").partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media_type.strip().lower(), charset


def _strict(request: Request[Any, Any, Any]) -> bool:
    account: Account | None = getattr(request.state, "account", None)
    return account is not None and account.strict


async def read_json(request: Request[Any, Any, Any]) -> bytes:
    """The raw body of a JSON request, after checking its content type and encoding."""
    media_type, charset = _content_type(request)
    if media_type != JSON and _strict(request):
        raise field_problem(415, "Content-Type", "must be application/json (the account is strict)")
    if charset is not None and charset not in ("utf-8", "utf8"):
        raise field_problem(415, "Content-Type", "the only accepted charset is utf-8")
    body = await request.body()
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise field_problem(400, "body", f"is not valid UTF-8 (byte {exc.start})") from exc
    return body


def content_type_warnings(request: Request[Any, Any, Any]) -> list[FieldWarning]:
    """A warning (about the request: no index, no id) when a body read by :func:`read_json` was not
    declared ``application/json``; none when it was."""
    media_type = _content_type(request)[0]
    if media_type == JSON:
        return []
    shown = media_type[:SHOWN_TYPE] if media_type else "not given"
    return [FieldWarning(None, None, "Content-Type", f"Content-Type was {shown}; read as JSON", CONTENT_TYPE)]


def decode(body: bytes | msgspec.Raw, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode JSON with a prebuilt decoder; a failure becomes a 400 problem naming the path."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        path, message = split_error(str(exc))
        raise field_problem(400, path, message) from exc
    except msgspec.DecodeError as exc:
        raise field_problem(400, "body", str(exc)) from exc
    except RecursionError as exc:
        raise field_problem(400, "body", "is nested too deeply") from exc
