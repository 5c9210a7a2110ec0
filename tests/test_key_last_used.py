"""An API key's last use: noted by the key lookup at most once a minute per key, off the request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from conftest import Tenant
from patron import accounts
from patron.store import Store


def _last_used(store: Store, tenant: Tenant) -> list[object]:
    return [k.last_used_at for k in store.read_blocking(lambda conn: accounts.list_keys(conn, tenant.hash))]


def test_a_keys_use_is_written_at_most_once_a_minute(
    store: Store, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant("shop")
    assert _last_used(store, tenant) == [None]

    async def use(resolver: accounts.KeyResolver, key: str, times: int = 1) -> None:
        for _ in range(times):
            await resolver.resolve(key)
        await resolver.settled()

    resolver = accounts.KeyResolver(store)
    asyncio.run(use(resolver, tenant.key))
    [first] = _last_used(store, tenant)
    assert first is not None
    asyncio.run(use(resolver, tenant.key, times=5))
    assert _last_used(store, tenant) == [first]  # this process noted it a moment ago
    asyncio.run(use(accounts.KeyResolver(store), tenant.key))
    assert _last_used(store, tenant) == [first]  # another process: the store keeps the minute
    asyncio.run(use(resolver, "no such key"))
    assert _last_used(store, tenant) == [first]

    later = first + timedelta(seconds=accounts.LAST_USED_EVERY + 1)  # type: ignore[operator]
    store.write_blocking(lambda conn: accounts.mark_used(conn, accounts.hash_key(tenant.key), later))
    assert _last_used(store, tenant) == [later]
