"""One rule for every listing's ``limit``: below 1 is a 400 naming it, above the listing's most reads
the most, on every route of the OpenAPI document that takes one."""

from __future__ import annotations

import re
from typing import Any

import pytest

from conftest import Tenant
from support.app import Client, app_fixtures
from support.http import assert_problem

shared, client, make_tenant = app_fixtures()


def listings(client: Client) -> list[str]:
    """Every GET path of the document with a ``limit`` parameter, path parameters filled in."""
    document: dict[str, Any] = client.get("/v2/swagger.json").json()
    found = []
    for path, operations in document["paths"].items():
        parameters = operations.get("get", {}).get("parameters", [])
        if any(p["name"] == "limit" and p["in"] == "query" for p in parameters):
            found.append(re.sub(r"\{[^}]+\}", "1", path))
    return sorted(found)


def test_every_listing_takes_limit(client: Client) -> None:
    assert {"/v2/orders", "/v2/lists", "/v2/push/_errors", "/v2/unsubscribes"} <= set(listings(client))


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_a_limit_below_one_is_a_400_naming_it(client: Client, tenant: Tenant, limit: str) -> None:
    for path in listings(client):
        response = client.get(path, params={"limit": limit}, headers=tenant.headers)
        assert_problem(response, 400, "limit")


def test_a_limit_above_the_most_reads_the_most(client: Client, tenant: Tenant) -> None:
    for path in listings(client):
        response = client.get(path, params={"limit": "100000"}, headers=tenant.headers)
        assert response.status_code in (200, 404), (path, response.text)


#: What differs between two answers to the same request: a problem's request id, the report's time.
VOLATILE = ("request_id", "generated_at")


def answer(response: Any) -> Any:
    """A response's body, but for what differs between two answers to the same request."""
    body = response.json()
    return {k: v for k, v in body.items() if k not in VOLATILE} if isinstance(body, dict) else body


def test_an_empty_parameter_is_absent(client: Client, tenant: Tenant) -> None:
    """What a client sends for every filter it leaves unset, on every listing."""
    for path in listings(client):
        document = client.get("/v2/swagger.json").json()
        template = next(p for p in document["paths"] if re.sub(r"\{[^}]+\}", "1", p) == path)
        names = [p["name"] for p in document["paths"][template]["get"]["parameters"] if p["in"] == "query"]
        plain = client.get(path, headers=tenant.headers)
        empty = client.get(f"{path}?{'&'.join(f'{name}=' for name in names)}", headers=tenant.headers)
        assert (empty.status_code, answer(empty)) == (plain.status_code, answer(plain)), (path, empty.text)
    unset = client.get("/v2/unsubscribes?since=&before=&type=", headers=tenant.headers)
    assert (unset.status_code, unset.json()) == (200, [])
