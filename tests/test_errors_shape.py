"""One exception hierarchy (``patron.errors``), answered in one place (``api/problems.py``): each kind
of error has its status, its problem document names the fields at fault as structured errors, and
what may succeed later says when."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from litestar import post
from litestar.params import PathParameter
from litestar.testing import TestClient

import patron
from conftest import Tenant
from patron import errors
from patron.accounts import AccountError, UnknownAccount
from patron.api.problems import ProblemError
from patron.email import links, messages
from patron.email.sandbox import RenderFailed
from patron.email.templates import TemplateInvalid
from patron.errors import FieldError, FieldInvalid, PatronError
from patron.ingest.queue import BacklogFull
from patron.profiles.lists import TooManyLists
from patron.ratelimits import InvalidLimit
from patron.records.validate import BatchInvalid, RecordError, RecordsInvalid

Client = TestClient[Any]
PROBLEM = "application/problem+json"
#: The exceptions of Patron that are not ``PatronError``, and why none of them reaches a client as it is.
#: The client and the import tools run on the caller's side: their errors are raised to the caller
#: (``patron.client.ClientError``, a usage error of ``patron import``), never answered by the server.
CLIENT_SIDE = ("patron.client.", "patron.transfer.")
NOT_PATRON_ERRORS = {
    # the worker's own signal to retry a round
    "patron.ingest.worker.Conflict",
    # inside the sender thread, the rendering process and validation: each becomes something else
    "patron.email.outbox.Unbuildable",
    "patron.email.sandbox._Limit",
    "patron.records.validate._Refused",
    # a webhook URL that may not be delivered to: a FieldInvalid at creation, a logged attempt after
    "patron.webhooks.network.Refused",
    # the console's signal to answer with its sign-in page (a redirect, not a problem)
    "patron.console.session.SignInNeeded",
}


def patron_exceptions() -> Iterator[type[BaseException]]:
    for module in pkgutil.walk_packages(patron.__path__, "patron."):
        if ".migrations" in module.name or module.name.endswith("__main__"):
            continue
        for value in vars(importlib.import_module(module.name)).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module.name
            ):
                yield value


def test_errors_is_the_bottom_layer() -> None:
    source = Path(errors.__file__).read_text()
    imported = [
        node.module or "" for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)
    ] + [
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    assert [name for name in imported if name.split(".")[0] == "patron"] == []


def test_every_exception_of_patron_is_a_patron_error_but_the_known_few() -> None:
    others = {
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in patron_exceptions()
        if not issubclass(cls, PatronError) and not cls.__module__.startswith(CLIENT_SIDE)
    }
    assert others <= NOT_PATRON_ERRORS


def test_the_domain_errors_are_of_their_kinds() -> None:
    kinds = {
        AccountError: errors.Invalid,
        UnknownAccount: errors.NotFound,
        InvalidLimit: errors.Invalid,
        BatchInvalid: errors.Invalid,
        RecordsInvalid: errors.Invalid,
        FieldInvalid: errors.Invalid,
        TemplateInvalid: errors.Invalid,
        RenderFailed: errors.Invalid,
        links.Refused: errors.Invalid,
        links.Forbidden: errors.Forbidden,
        messages.NotFound: errors.NotFound,
        TooManyLists: errors.Conflict,
        BacklogFull: errors.TooMany,
    }
    for cls, kind in kinds.items():
        assert issubclass(cls, kind), cls
    # what was a ValueError is one still (callers catch it so)
    for cls in (
        AccountError,
        InvalidLimit,
        BatchInvalid,
        RecordsInvalid,
        FieldInvalid,
        TemplateInvalid,
        links.Refused,
    ):
        assert issubclass(cls, ValueError), cls


# answered in one place ----------------------------------------------------------------------------

#: An error raised in a handler, and what the client gets: status, detail, fields, more headers.
ANSWERS: list[tuple[PatronError, int, str, list[dict[str, str]] | None, dict[str, str]]] = [
    (
        FieldInvalid("survivor", "is required"),
        400,
        "survivor: is required",
        [{"field": "survivor", "detail": "is required"}],
        {},
    ),
    (
        BatchInvalid("body", "must hold at least one record"),
        400,
        "body: must hold at least one record",
        [{"field": "body", "detail": "must hold at least one record"}],
        {},
    ),
    (
        RecordsInvalid(
            [RecordError(0, "a", "root > currency", "bad"), RecordError(1, "b", "root > id", "worse")]
        ),
        400,
        "root > currency: bad; root > id: worse",
        [{"field": "root > currency", "detail": "bad"}, {"field": "root > id", "detail": "worse"}],
        {},
    ),
    (
        TemplateInvalid("root > html", "line 1: oops"),
        400,
        "root > html: line 1: oops",
        [{"field": "root > html", "detail": "line 1: oops"}],
        {},
    ),
    (RenderFailed(None, "it takes too long", limit=True), 400, "it takes too long", None, {}),
    (
        AccountError("the queue limit must be at least 1 record"),
        400,
        "the queue limit must be at least 1 record",
        None,
        {},
    ),
    (InvalidLimit("'x' is not a rate"), 400, "'x' is not a rate", None, {}),
    (links.Forbidden(links.FORM_NOT_OURS), 403, links.FORM_NOT_OURS, None, {}),
    (UnknownAccount("no account has the hash 'x'"), 404, "no account has the hash 'x'", None, {}),
    (
        messages.NotFound("root > template_id", "no template 9"),
        404,
        "root > template_id: no template 9",
        [{"field": "root > template_id", "detail": "no template 9"}],
        {},
    ),
    (
        errors.NotFound.at("list_id", "no such list"),
        404,
        "list_id: no such list",
        [{"field": "list_id", "detail": "no such list"}],
        {},
    ),
    (
        TooManyLists("root > id"),
        409,
        "root > id: the account has 10,000 lists, the most it may have",
        [{"field": "root > id", "detail": "the account has 10,000 lists, the most it may have"}],
        {},
    ),
    (
        BacklogFull(3, 2),
        429,
        "the account has 3 records queued and may queue 2; nothing was stored",
        None,
        {"retry-after": "5"},
    ),
    (
        errors.Unavailable("down for a while", retry_after=7),
        503,
        "down for a while",
        None,
        {"retry-after": "7"},
    ),
    (
        ProblemError(415, "Content-Type: no", errors=[FieldError("Content-Type", "no")]),
        415,
        "Content-Type: no",
        [{"field": "Content-Type", "detail": "no"}],
        {},
    ),
]


@pytest.fixture
def raising(client: Client) -> Iterator[Client]:
    """The app with ``POST /v2/_test/raise/{index}``, which raises ``ANSWERS[index]``'s error."""

    @post("/v2/_test/raise/{index:int}")
    async def raise_one(index: Annotated[int, PathParameter()]) -> None:
        raise ANSWERS[index][0]

    client.app.register(raise_one)
    yield client


@pytest.mark.parametrize("index", range(len(ANSWERS)), ids=[type(a[0]).__name__ for a in ANSWERS])
def test_each_kind_of_error_is_answered_with_its_problem(raising: Client, tenant: Tenant, index: int) -> None:
    _, status, detail, fields, headers = ANSWERS[index]
    response = raising.post(f"/v2/_test/raise/{index}", headers=tenant.headers)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    expected: dict[str, Any] = {"title": response.json()["title"], "status": status, "detail": detail}
    expected["request_id"] = response.headers["x-request-id"]
    if fields is not None:
        expected["errors"] = fields
    assert response.json() == expected
    for name, value in headers.items():
        assert response.headers[name] == value
    if not headers:
        assert "retry-after" not in response.headers


def test_a_patron_error_of_no_known_kind_is_a_bug_a_500(client: Client, tenant: Tenant) -> None:
    class Odd(PatronError):
        pass

    @post("/v2/_test/odd")
    async def odd() -> None:
        raise Odd("internal detail that must not leak")

    client.app.register(odd)
    response = client.post("/v2/_test/odd", headers=tenant.headers)
    assert response.status_code == 500
    assert "internal detail" not in response.text


def test_a_field_error_of_a_struct_s_own_check_is_a_structured_error_of_the_problem(
    client: Client, tenant: Tenant
) -> None:
    """msgspec carries the field error of ``__post_init__`` as text; the problem has it as an object
    again, with the path of the Struct in front."""
    response = client.post(
        "/v2/merge-profile",
        json={"customers_to_merge": [{"type": "email_address", "value": "a@b.co"}]},
        headers=tenant.headers,
    )
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == [{"field": "root > survivor", "detail": "is required with customers_to_merge"}]
    assert body["detail"] == "root > survivor: is required with customers_to_merge"
    nested = {
        "from": {"email": "news@example.com", "name": "x: y;"},
        "html": "x",
        "subject": "s",
        "to": {"email": "a@b.co"},
    }
    response = client.post("/v2/transactional-email/send", json=nested, headers=tenant.headers)
    assert response.json()["errors"] == [
        {"field": "root > from > name", "detail": "must not hold group syntax (a colon, then a semicolon)"}
    ]
