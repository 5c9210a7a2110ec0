"""Every error is an RFC 9457 problem naming what is wrong; none carries a stack trace."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest
from litestar import Request, post
from litestar.testing import TestClient

from conftest import Tenant
from patron.api.body import decode, read_json
from patron.api.edge import edge_of

PROBLEM = "application/problem+json"


class Item(msgspec.Struct):
    id: str
    quantity: int
    properties: dict[str, Any] = {}


_items = msgspec.json.Decoder(list[Item])


def _nested(depth: int) -> bytes:
    """A valid item whose free-form properties nest ``depth`` arrays deep."""
    return b'[{"id": "a", "quantity": 1, "properties": {"x": ' + b"[" * depth + b"]" * depth + b"}}]"


@post("/v2/_test/items", status_code=202)
async def items_endpoint(request: Request[Any, Any, Any]) -> dict[str, int]:
    """A write endpoint built the way every Patron write endpoint reads its body."""
    return {"accepted": len(decode(await read_json(request), _items))}


@pytest.fixture
def with_items(client: TestClient) -> TestClient:  # type: ignore[type-arg]
    client.app.register(items_endpoint)
    return client


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    if field is not None:
        assert [e["field"] for e in body["errors"]] == [field]
        assert field in body["detail"]
    return body


def test_unknown_route_is_a_404_problem(client: TestClient, tenant: Tenant) -> None:  # type: ignore[type-arg]
    for path in ("/v2/nope", "/nope", "/v2/docs/nope", "/v2"):
        assert_problem(client.get(path, headers=tenant.headers), 404)


def test_wrong_method_is_a_405_problem_with_allow(client: TestClient, tenant: Tenant) -> None:  # type: ignore[type-arg]
    response = client.delete("/v2/account", headers=tenant.headers)
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]


def test_good_json_is_accepted(with_items: TestClient, tenant: Tenant) -> None:  # type: ignore[type-arg]
    response = with_items.post("/v2/_test/items", json=[{"id": "a", "quantity": 1}], headers=tenant.headers)
    assert response.status_code == 202
    assert response.json() == {"accepted": 1}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "field"),
    [
        (b"[{", "application/json", 400, "body"),
        (b'[{"id": "a", "quantity": NaN}]', "application/json", 400, "body"),
        (b'[{"id": "a", "quantity": Infinity}]', "application/json", 400, "body"),
        (b'[{"id": "\xff\xfe", "quantity": 1}]', "application/json", 400, "body"),
        (b"[" * 10_000 + b"]" * 10_000, "application/json", 400, "root > 0"),
        (_nested(10_000), "application/json", 400, "body"),
        (_nested(100_000), "application/json", 400, "body"),
        (b'[{"id": "a", "quantity": "1"}]', "application/json", 400, "root > 0 > quantity"),
        (b'[{"id": "a"}]', "application/json", 400, "root > 0"),
        (b'{"id": "a", "quantity": 1}', "application/json", 400, "root"),
        (b"id=a&quantity=1", "application/x-www-form-urlencoded", 400, "body"),
        (b"id=a&quantity=1", "", 400, "body"),
        (b'[{"id": "a", "quantity": 1}]', "application/json; charset=latin-1", 415, "Content-Type"),
        (b'[{"id": "a", "quantity": 1}]', "text/plain; charset=latin-1", 415, "Content-Type"),
    ],
)
def test_bad_bodies_get_a_problem_naming_the_field(
    with_items: TestClient,  # type: ignore[type-arg]
    tenant: Tenant,
    body: bytes,
    content_type: str,
    status: int,
    field: str,
) -> None:
    headers = {**tenant.headers, "Content-Type": content_type}
    assert_problem(with_items.post("/v2/_test/items", content=body, headers=headers), status, field)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_json_under_another_content_type_is_read_as_json(
    with_items: TestClient,  # type: ignore[type-arg]
    tenant: Tenant,
    content_type: str,
) -> None:
    headers = {**tenant.headers, "Content-Type": content_type}
    response = with_items.post("/v2/_test/items", content=b'[{"id": "a", "quantity": 1}]', headers=headers)
    assert (response.status_code, response.json()) == (202, {"accepted": 1})


def test_body_over_the_cap_is_a_413_problem(with_items: TestClient, tenant: Tenant) -> None:  # type: ignore[type-arg]
    cap = with_items.app.request_max_body_size
    assert cap is not None
    body = b'[{"id": "' + b"x" * cap + b'", "quantity": 1}]'
    headers = {**tenant.headers, "Content-Type": "application/json"}
    problem = assert_problem(with_items.post("/v2/_test/items", content=body, headers=headers), 413, "body")
    assert f"{cap:,}" in problem["detail"]


def test_unexpected_failure_is_a_500_problem_whose_request_id_is_logged(
    client: TestClient,  # type: ignore[type-arg]
    tenant: Tenant,
    caplog: pytest.LogCaptureFixture,
) -> None:
    @post("/v2/_test/boom")
    async def boom() -> None:
        raise RuntimeError("internal detail that must not leak")

    client.app.register(boom)
    with caplog.at_level(logging.ERROR, logger="patron.http"):
        response = client.post("/v2/_test/boom", headers=tenant.headers)
    problem = assert_problem(response, 500)
    assert "internal detail" not in response.text
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == problem["request_id"]]
    assert logged and logged[0].exc_info is not None


def test_storage_failure_is_a_503_problem_with_retry_after(client: TestClient, tenant: Tenant) -> None:  # type: ignore[type-arg]
    assert client.get("/ready").json() == {"status": "ready"}
    edge_of(client.app).store.close()
    response = client.get("/ready")
    assert_problem(response, 503)
    assert int(response.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v2/custom-events?event_type=a%00b", "event_type"),
        ("/v2/contacts?email=a%00@b.co", "email"),
        ("/v2/push/a%00b", "request_id"),
    ],
)
def test_a_nul_in_a_parameter_is_a_400_naming_it(
    client: TestClient,  # type: ignore[type-arg]
    tenant: Tenant,
    path: str,
    field: str,
) -> None:
    assert_problem(client.get(path, headers=tenant.headers), 400, field)
