"""Per-account rate limits by endpoint class: 429 problem with Retry-After and RateLimit-* headers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from litestar.testing import TestClient

from conftest import PostgresCluster, Tenant
from patron import accounts, ratelimits
from patron.app import create_app
from patron.config import Settings
from patron.store import Store, open_store


def statuses(client: TestClient, tenant: Tenant, n: int) -> list[int]:  # type: ignore[type-arg]
    return [client.get("/v2/account", headers=tenant.headers).status_code for _ in range(n)]


def test_over_the_limit_is_a_429_problem_with_headers(
    client: TestClient,  # type: ignore[type-arg]
    make_tenant: Callable[..., Tenant],
) -> None:
    shop = make_tenant("shop", limits={"data": "4/minute"})
    assert statuses(client, shop, 4) == [200] * 4
    response = client.get("/v2/account", headers=shop.headers)
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 429 and "4/minute" in problem["detail"] and "data" in problem["detail"]
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["ratelimit-limit"] == "4"
    assert response.headers["ratelimit-remaining"] == "0"
    assert int(response.headers["ratelimit-reset"]) == int(response.headers["retry-after"])


def test_limits_are_per_account(client: TestClient, make_tenant: Callable[..., Tenant]) -> None:  # type: ignore[type-arg]
    first = make_tenant("first", limits={"data": "2/minute"})
    second = make_tenant("second", limits={"data": "2/minute"})
    assert statuses(client, first, 3) == [200, 200, 429]
    assert statuses(client, second, 3) == [200, 200, 429]


def test_the_default_data_limit_is_four_per_second(
    client: TestClient, make_tenant: Callable[..., Tenant]
) -> None:  # type: ignore[type-arg]
    shop = make_tenant("shop", limits={})
    assert client.get("/v2/account", headers=shop.headers).json()["limits"] == ratelimits.DEFAULT_LIMITS
    # A burst of ten: some refused, and no five passed within a second (the window moves with time:
    # a burst longer than a second may pass more than four in all).
    timed = []
    for _ in range(10):
        started = time.time()
        status = client.get("/v2/account", headers=shop.headers).status_code
        timed.append((started, time.time(), status))
    passed = [(started, ended) for started, ended, status in timed if status == 200]
    assert 429 in [status for _, _, status in timed]
    for first, fifth in zip(passed, passed[4:], strict=False):
        assert fifth[1] - first[0] >= 1.0, timed


def test_a_window_frees_requests_again(client: TestClient, make_tenant: Callable[..., Tenant]) -> None:  # type: ignore[type-arg]
    shop = make_tenant("shop", limits={"data": "1/second"})
    assert statuses(client, shop, 2) == [200, 429]
    deadline = time.monotonic() + 5
    while client.get("/v2/account", headers=shop.headers).status_code == 429:
        assert time.monotonic() < deadline, "the limit never let a request through again"
        time.sleep(0.1)


def test_unlimited_never_answers_429(client: TestClient, tenant: Tenant) -> None:  # type: ignore[type-arg]
    assert set(statuses(client, tenant, 30)) == {200}


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("8/second", "8/second"),
        ("6 per minute", "6/minute"),
        ("10/2 seconds", "10/2 seconds"),
        (" Unlimited ", "unlimited"),
    ],
)
def test_limits_are_validated_and_canonical(value: str, canonical: str) -> None:
    assert ratelimits.validate("push", value) == canonical


@pytest.mark.parametrize("value", ["banana", "0/second", "-1/second", "4/fortnight", ""])
def test_bad_limits_are_refused(value: str) -> None:
    with pytest.raises(ratelimits.InvalidLimit):
        ratelimits.validate("push", value)


def test_unknown_endpoint_class_is_refused() -> None:
    with pytest.raises(ratelimits.InvalidLimit, match="unknown endpoint class"):
        ratelimits.validate("everything", "1/second")


def test_limits_in_redis_hold_across_processes(
    settings: Settings, store: Store, make_tenant: Callable[..., Tenant], redis_url: str
) -> None:
    """Two servers (two apps with their own limiters) on one Redis count one account's requests together."""
    shared = replace(settings, redis_url=redis_url)
    shop = make_tenant("shop", limits={"data": "5/minute"})
    with TestClient(create_app(shared, store)) as first, TestClient(create_app(shared, store)) as second:
        answers = [(first if i % 2 else second).get("/v2/account", headers=shop.headers) for i in range(8)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
    assert {a.headers.get("ratelimit-limit") for a in answers[5:]} == {"5"}


def test_on_postgresql_without_redis_limits_are_counted_in_the_database(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    """Two servers on one PostgreSQL database and no Redis still count one account's requests together."""
    settings = replace(Settings(), data_dir=tmp_path, database_url=postgres.new_database(), run_worker=False)
    store = open_store(settings)
    store.start()
    try:
        account, key = store.write_blocking(lambda conn: accounts.create_account(conn, "shop", "staging"))
        # A fixed window of an hour: eight requests in a few milliseconds fall in one.
        store.write_blocking(lambda conn: accounts.set_limits(conn, account.hash, {"data": "5/hour"}))
        headers = {"X-Ometria-Auth": key}
        with (
            TestClient(create_app(settings, store)) as first,
            TestClient(create_app(settings, store)) as second,
        ):
            answers = [(first if i % 2 else second).get("/v2/account", headers=headers) for i in range(8)]
    finally:
        store.close()
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
    assert all(1 <= int(a.headers["retry-after"]) <= 3600 for a in answers[5:])


def test_every_counted_answer_carries_the_quota(
    client: TestClient, make_tenant: Callable[..., Tenant]
) -> None:  # type: ignore[type-arg]
    """The IETF RateLimit-Policy and RateLimit fields, on successes and failures alike."""
    shop = make_tenant("shop", limits={"data": "5/minute", "push": "8/second"})
    first = client.get("/v2/account", headers=shop.headers)
    assert first.headers["ratelimit-policy"] == '"data";q=5;w=60'
    assert first.headers["ratelimit"].startswith('"data";r=4;t=')
    missing = client.get("/v2/orders/none", headers=shop.headers)
    assert missing.status_code == 404 and missing.headers["ratelimit"].startswith('"data";r=3;t=')
    pushed = client.post("/v2/push", json=[{"@type": "contact", "id": "c1"}], headers=shop.headers)
    assert pushed.status_code == 202
    assert pushed.headers["ratelimit-policy"] == '"push";q=8;w=1'
    statuses(client, shop, 3)
    refused = client.get("/v2/account", headers=shop.headers)
    assert refused.status_code == 429 and refused.headers["ratelimit"].startswith('"data";r=0;t=')
    free = make_tenant("free")  # every limit lifted: no quota to tell
    assert "ratelimit-policy" not in client.get("/v2/account", headers=free.headers).headers
