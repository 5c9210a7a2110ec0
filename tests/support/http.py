"""Requests and replies through HTTP, and reading back what an account has stored.

``push`` and ``wait_applied`` (push and wait until applied) are conftest's."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from conftest import Tenant, wait_applied
from support.app import Client

PROBLEM = "application/problem+json"
#: The event type of :func:`barrier`'s events, which :func:`stored` leaves out.
BARRIER = "barrier"
#: Where each record type is listed (contacts: those of the default collection) and read one by one.
LISTS = {
    "contact": "/v2/contacts/default",
    "order": "/v2/orders",
    "product": "/v2/products?includeVariants=true",
    "custom_event": "/v2/custom-events",
}
ONE = {"contact": "/v2/contacts/default/{}", "order": "/v2/orders/{}", "product": "/v2/products/{}"}


def post(client: Client, tenant: Tenant, body: Any, path: str = "/v2/push") -> httpx.Response:
    """POST ``body`` as compact JSON (so a record's size on the wire is exactly what the test built)."""
    content = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return client.post(path, content=content, headers={**tenant.headers, "Content-Type": "application/json"})


def read(client: Client, tenant: Tenant, path: str) -> Any:
    response = client.get(path, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem with ``status``, naming ``field`` first among its errors when given."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    if field is not None:
        assert problem["errors"][0]["field"] == field, problem
        assert field in problem["detail"]
    return problem


def barrier(client: Client, tenant: Tenant) -> None:
    """Return once every request queued so far is applied (an account's requests apply in order).

    Goes through ``POST /v2/custom-events``, which counts against the data rate limit, not push."""
    event = {"id": uuid.uuid4().hex, "event_type": BARRIER, "identity_email": "barrier@example.com"}
    response = post(client, tenant, event, "/v2/custom-events")
    assert response.status_code == 202, response.text
    wait_applied(client, tenant, response.json()["request_id"])


def stored(client: Client, tenant: Tenant, record_type: str) -> dict[str, Any]:
    """Every stored record of a type (up to 250; barrier events left out), by id, in list order."""
    path = LISTS[record_type]
    docs = read(client, tenant, f"{path}{'&' if '?' in path else '?'}limit=250")
    return {doc["id"]: doc for doc in docs if doc.get("event_type") != BARRIER}


def read_one(client: Client, tenant: Tenant, record_type: str, record_id: str) -> Any:
    """One stored record (a custom event, which has no endpoint of its own, from the list)."""
    if record_type == "custom_event":
        return stored(client, tenant, record_type)[record_id]
    return read(client, tenant, ONE[record_type].format(record_id))


def errors(client: Client, tenant: Tenant, query: str = "") -> list[dict[str, Any]]:
    """``GET /v2/push/_errors`` (with ``query``)."""
    found: list[dict[str, Any]] = read(client, tenant, f"/v2/push/_errors{query}")
    return found


def nothing_stored(client: Client, tenant: Tenant, *record_types: str) -> None:
    """After a barrier, no record of ``record_types`` and no push error exists in the account."""
    barrier(client, tenant)
    for record_type in record_types:
        assert stored(client, tenant, record_type) == {}, record_type
    assert errors(client, tenant) == []
