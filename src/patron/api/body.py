"""Reading a JSON request body: the one way every write endpoint takes its input.

Each failure is a 4xx problem naming what is wrong: a wrong ``Content-Type`` (415), bytes that are not
UTF-8, JSON that is malformed or nested too deep, or a value of the wrong shape (400, with its path).
Bodies over the size cap never get here: Litestar refuses them with 413 while reading.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request

from patron.api.problems import field_problem
from patron.records.validate import split_error

T = TypeVar("T")


async def read_json(request: Request[Any, Any, Any]) -> bytes:
    """The raw body of a JSON request, after checking its content type and encoding."""
    media_type, _, params = request.headers.get("content-type", "").partition(";")
    if media_type.strip().lower() != "application/json":
        raise field_problem(415, "Content-Type", "must be application/json")
    charset = params.strip().lower().removeprefix("charset=").strip('"')
    if params.strip() and charset not in ("utf-8", "utf8"):
        raise field_problem(415, "Content-Type", "the only accepted charset is utf-8")
    body = await request.body()
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise field_problem(400, "body", f"is not valid UTF-8 (byte {exc.start})") from exc
    return body


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
