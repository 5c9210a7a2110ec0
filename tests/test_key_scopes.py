"""API keys with an expiry or a read-only scope, over HTTP on both stores: an expired key is refused as
an unknown one is; a read-only key reads, and every request that is not a read gets 403 and changes
nothing."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import TestClient
from sqlalchemy import func, select, update

from conftest import Tenant
from patron import accounts
from patron.api.auth import READ_ONLY
from patron.store import Store
from patron.store.schema import api_keys, import_batches, push_errors

Client = TestClient[Any]
PROBLEM_JSON = "application/problem+json"
CONTACT = {"@type": "contact", "id": "c1", "email": "ann@example.com"}


def new_key(store: Store, tenant: Tenant, **given: Any) -> tuple[accounts.ApiKey, str]:
    return store.write_blocking(lambda conn: accounts.create_key(conn, tenant.hash, "scoped", **given))


def writes(app: Litestar) -> list[tuple[str, str]]:
    """Every (method, path) the app serves under ``/v2`` that is not a read, with each path parameter
    given as 1 (a number, or a string)."""
    found = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path_format.startswith("/v2/"):
            continue
        for method, (handler, _) in route.route_handler_map.items():
            automatic = handler.fn.__qualname__.startswith("HTTPRoute.create_options_handler.")
            if method not in ("GET", "HEAD") and not automatic:
                found.add((method, re.sub(r"\{[^}]+\}", "1", route.path_format)))
    return sorted(found)


def stored_for(store: Store, tenant: Tenant) -> tuple[int, int]:
    """The account's queued batches and push errors."""

    def count(conn: Any) -> tuple[int, int]:
        account = accounts.get_account(conn, tenant.hash)
        batches = conn.execute(
            select(func.count()).where(import_batches.c.account_id == account.id)
        ).scalar_one()
        errors = conn.execute(select(func.count()).where(push_errors.c.account_id == account.id)).scalar_one()
        return int(batches), int(errors)

    return store.read_blocking(count)


def test_a_read_only_key_reads(client: Client, store: Store, tenant: Tenant) -> None:
    _, key = new_key(store, tenant, read_only=True)
    assert client.post("/v2/push", json=[CONTACT], headers=tenant.headers).status_code == 202
    for path in ("/v2/account", "/v2/contacts", "/v2/push/_errors", "/v2/lists"):
        answer = client.get(path, headers={"X-Ometria-Auth": key})
        assert answer.status_code == 200, (path, answer.text)
    assert client.get("/v2/account", headers={"X-Ometria-Auth": key}).json()["account_hash"] == tenant.hash


def test_a_read_only_key_gets_403_on_every_write_and_nothing_changes(
    client: Client, store: Store, tenant: Tenant
) -> None:
    _, key = new_key(store, tenant, read_only=True)
    routes = writes(client.app)
    assert ("POST", "/v2/push") in routes and ("PUT", "/v2/lists/1") in routes
    for method, path in routes:
        answer = client.request(method, path, json=[CONTACT], headers={"X-Ometria-Auth": key})
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.headers["content-type"].split(";")[0] == PROBLEM_JSON
        assert answer.json()["detail"] == f"{READ_ONLY}: {method} {path} changes data"
    assert stored_for(store, tenant) == (0, 0)
    # the account's read-write key still writes
    assert client.post("/v2/push", json=[CONTACT], headers=tenant.headers).status_code == 202
    assert stored_for(store, tenant) == (1, 0)


def test_an_expired_key_is_refused_as_an_unknown_key_is(client: Client, store: Store, tenant: Tenant) -> None:
    created, key = new_key(store, tenant, expires_at=accounts.now() + timedelta(days=1))
    assert client.get("/v2/account", headers={"X-Ometria-Auth": "0" * 32}).status_code == 403
    unknown = client.post("/v2/push", json=[CONTACT], headers={"X-Ometria-Auth": "0" * 32})
    past = accounts.now() - timedelta(seconds=1)
    store.write_blocking(
        lambda conn: conn.execute(
            update(api_keys).where(api_keys.c.public_id == created.id).values(expires_at=past)
        )
    )
    expired = client.post("/v2/push", json=[CONTACT], headers={"X-Ometria-Auth": key})
    assert (expired.status_code, expired.headers["content-type"]) == (
        unknown.status_code,
        unknown.headers["content-type"],
    )
    assert {**expired.json(), "request_id": None} == {**unknown.json(), "request_id": None}
    assert stored_for(store, tenant) == (0, 0)
    assert client.get("/v2/account", headers=tenant.headers).status_code == 200  # the account's other key


def test_a_key_expires_at_its_time_even_while_its_lookup_is_cached(store: Store, tenant: Tenant) -> None:
    expires = accounts.now() + timedelta(days=1)
    _, key = new_key(store, tenant, expires_at=expires)
    clock = [expires - timedelta(seconds=1)]
    resolver = accounts.KeyResolver(store, ttl=3600, clock=lambda: clock[0])

    async def resolve() -> accounts.KeyAccess | None:
        found = await resolver.resolve(key)
        await resolver.settled()
        return found

    access = asyncio.run(resolve())
    assert access is not None and access.account.hash == tenant.hash and access.expires_at == expires
    clock[0] = expires  # the cached answer is an hour old at most: the expiry is checked at each use
    assert asyncio.run(resolve()) is None
    assert store.read_blocking(lambda conn: accounts.account_for_key(conn, tenant.key)) is not None


@pytest.mark.parametrize(
    "expires_at",
    [datetime(2020, 1, 1).astimezone(), accounts.now() + timedelta(days=4000)],
    ids=["past", "far"],
)
def test_a_key_cannot_expire_in_the_past_or_decades_ahead(
    store: Store, tenant: Tenant, expires_at: datetime
) -> None:
    before = store.read_blocking(lambda conn: accounts.list_keys(conn, tenant.hash))
    with pytest.raises(accounts.AccountError, match="a key's expiry must be in the future"):
        new_key(store, tenant, expires_at=expires_at)
    assert store.read_blocking(lambda conn: accounts.list_keys(conn, tenant.hash)) == before
