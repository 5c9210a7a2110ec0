"""Lists at scale, and reads that cannot starve other accounts.

- ``GET /v2/lists`` is a page (``limit``/``offset``) read from the lists' own rows, with the size and
  the totals the worker keeps; thousands of lists page like any other listing, and another account's
  pushes and reads are served meanwhile (against a real server).
- How many lists a push, and an account, may create is bounded.
- A read past its time budget is cancelled with a 503 problem and ``Retry-After``; the store's reader
  threads serve the accounts in turn (:class:`patron.store.fair.FairPool`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, text

from conftest import Tenant, create_tenant_cli, push, set_limits, start_server, wait_applied
from patron import accounts
from patron.config import Settings
from patron.profiles.lists import MAX_LISTS
from patron.records.types import MAX_LISTS_PER_PUSH
from patron.store import ReadTimeout, open_store
from patron.store.fair import Deadline, FairPool
from patron.store.schema import lists
from support.app import Client, app_fixtures
from support.http import assert_problem, read

shared, client, make_tenant = app_fixtures()
PROBLEM = "application/problem+json"


def member(contact_id: str, list_ids: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "@type": "contact",
        "id": contact_id,
        "email": f"{contact_id}@example.com",
        "@add_to_lists": list_ids,
        **fields,
    }


def many_lists(client: Any, tenant: Tenant, count: int) -> None:
    """``count`` lists L0000, L0001... each with one member (a contact per hundred lists)."""
    names = [f"L{i:04d}" for i in range(count)]
    for start in range(0, count, MAX_LISTS_PER_PUSH):
        chunk = names[start : start + MAX_LISTS_PER_PUSH]
        push(client, tenant, [member(f"c{start}", chunk)], wait=False)


# paging ------------------------------------------------------------------------------------------


def test_thousands_of_lists_page_like_any_listing(client: Client, tenant: Tenant) -> None:
    many_lists(client, tenant, 2_500)
    push(
        client,
        tenant,
        [{"@type": "order", "id": "o1", "grand_total": 10, "customer": {"email": "c2400@example.com"}}],
    )

    page = read(client, tenant, "/v2/lists?limit=250&offset=2400")
    assert [view["id"] for view in page] == [f"L{i:04d}" for i in range(2400, 2500)]
    assert {(v["size"], v["total_orders"], v["total_revenue"]) for v in page} == {(1, 1, 10.0)}
    first = read(client, tenant, "/v2/lists")
    assert [view["id"] for view in first] == [f"L{i:04d}" for i in range(10)]
    assert {(v["size"], v["total_orders"]) for v in first} == {(1, 0)}
    assert read(client, tenant, "/v2/lists?limit=250&offset=2500") == []
    assert len(read(client, tenant, "/v2/lists?limit=999&mode=all")) == 250  # clamped, as elsewhere


def test_a_merge_and_an_erasure_keep_the_totals(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [member("ann", ["L"], customer_id="A"), member("bob", ["L"], customer_id="B")])
    orders = [
        {"@type": "order", "id": f"o{who}", "grand_total": total, "customer": {"id": who}}
        for who, total in (("A", 10.25), ("B", 5.5))
    ]
    push(client, tenant, orders)
    assert read(client, tenant, "/v2/lists/L")["size"] == 2
    merge = {
        "survivor": {"type": "customer_id", "value": "A"},
        "customers_to_merge": [{"type": "customer_id", "value": "B"}],
    }
    job = client.post("/v2/merge-profile", json=merge, headers=tenant.headers).json()
    wait_applied(client, tenant, job["id"])
    shown = read(client, tenant, "/v2/lists/L")
    assert (shown["size"], shown["total_orders"], shown["total_revenue"]) == (1, 2, 15.75)

    erased = client.post(
        "/v2/data-deletion-requests", json={"email": "ann@example.com"}, headers=tenant.headers
    )
    wait_applied(client, tenant, erased.json()["id"])
    shown = read(client, tenant, "/v2/lists/L")
    assert (shown["size"], shown["total_orders"], shown["total_revenue"]) == (0, 0, 0.0)


# how many lists ----------------------------------------------------------------------------------


def test_a_push_creates_a_bounded_number_of_lists(client: Client, tenant: Tenant) -> None:
    too_many = [f"X{i}" for i in range(MAX_LISTS_PER_PUSH + 1)]
    reply = client.post("/v2/push", json=[member("a", too_many)], headers=tenant.headers).json()
    assert (reply["accepted"], reply["errors"][0]["error_path"]) == (0, "root > @add_to_lists")

    half = MAX_LISTS_PER_PUSH // 2 + 1
    records = [member("b", [f"B{i}" for i in range(half)]), member("c", [f"C{i}" for i in range(half)])]
    reply = push(client, tenant, records)
    assert (reply["accepted"], reply["rejected"]) == (1, 1)
    assert (reply["errors"][0]["index"], reply["errors"][0]["error_path"]) == (1, "root > @add_to_lists")
    assert "at most 100 lists" in reply["errors"][0]["error_message"]
    assert len(read(client, tenant, "/v2/lists?limit=250")) == half


def test_an_account_holds_a_bounded_number_of_lists(shared: Any, client: Client, tenant: Tenant) -> None:
    account = shared.store.read_blocking(lambda conn: accounts.get_account(conn, tenant.hash))
    at = accounts.now()
    rows = [
        {"account_id": account.id, "list_id": f"F{i}", "created_at": at, "updated_at": at}
        for i in range(MAX_LISTS)
    ]
    shared.store.write_blocking(lambda conn: conn.execute(insert(lists), rows))

    refused = client.post("/v2/lists", json={"id": "one-more", "title": "One more"}, headers=tenant.headers)
    assert "10,000 lists" in assert_problem(refused, 409, "root > id")["detail"]
    reply = push(client, tenant, [member("a", ["one-more"]), member("b", ["F1"])])
    assert reply["accepted"] == 2  # valid when pushed: the worker refuses the one beyond the cap
    [error] = read(client, tenant, "/v2/push/_errors")
    assert (error["request_id"], error["index"], error["id"]) == (reply["request_id"], 0, "a")
    assert "the account has 10,000 lists" in error["error_message"]
    assert read(client, tenant, "/v2/lists/F1")["size"] == 1
    assert client.get("/v2/lists/one-more", headers=tenant.headers).status_code == 404


# one account's reads cannot stall another's --------------------------------------------------------


def test_another_account_is_served_while_one_reads_thousands_of_lists(
    tmp_path: Path, patron_environment: dict[str, str]
) -> None:
    data_dir = tmp_path / "data"
    heavy, light = (create_tenant_cli(data_dir, name, patron_environment) for name in ("heavy", "light"))
    for tenant in (heavy, light):
        unlimited = ["--data", "unlimited", "--push", "unlimited"]
        set_limits(data_dir, tenant.hash, *unlimited, environment=patron_environment)
    server = start_server(data_dir, environment=patron_environment)
    try:
        with server.client() as c:
            many_lists(c, heavy, 3_000)
            push(c, heavy, [member("last", ["L0000"])])
        stop = threading.Event()

        def read_all_lists() -> int:
            pages = 0
            with server.client() as c:
                while not stop.is_set():
                    for offset in range(0, 3_000, 250):
                        response = c.get(f"/v2/lists?limit=250&offset={offset}", headers=heavy.headers)
                        assert response.status_code == 200, response.text
                        pages += 1
            return pages

        with ThreadPoolExecutor(8) as readers:
            reading = [readers.submit(read_all_lists) for _ in range(8)]
            with server.client() as c:
                for n in range(20):
                    reply = push(c, light, [member(f"light{n}", ["mine"])])
                    assert reply["accepted"] == 1
                    assert read(c, light, "/v2/lists/mine")["size"] == n + 1
            stop.set()
            assert all(future.result() > 0 for future in reading)
    finally:
        server.stop()


def test_a_read_past_its_budget_is_cancelled(settings: Settings, backend: str) -> None:
    """A read that would run for ever is cancelled at its budget; the store goes on serving."""
    store = open_store(replace(settings, read_budget=0.5))
    store.start()
    endless = {
        "sqlite": "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n",
        "postgresql": "SELECT pg_sleep(600)",
    }[backend]
    try:
        with pytest.raises(ReadTimeout, match=r"budget of 0\.5 s"):
            asyncio.run(store.read(lambda conn: conn.execute(text(endless)).scalar()))
        assert asyncio.run(store.read(lambda conn: conn.execute(text("SELECT 1")).scalar())) == 1
    finally:
        store.close()


def test_a_request_whose_read_runs_out_of_time_is_a_503(
    tmp_path: Path, new_database_url: Callable[[], str | None]
) -> None:
    from support.app import running_app

    with running_app(tmp_path, new_database_url(), read_budget=0.0) as app:
        response = app.client.get("/v2/lists", headers={"X-Ometria-Auth": "any key at all"})
        problem = assert_problem(response, 503)
        assert response.headers["Retry-After"] == "5"
        assert "budget of 0 s" in problem["detail"]


def test_the_readers_serve_the_owners_in_turn() -> None:
    """Owners that wait take turns: A's three jobs do not all run before B's and C's."""
    pool = FairPool(1, "test-fair")
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def job(name: str, wait: bool = False) -> Callable[[], str]:
        def run() -> str:
            if wait:
                started.set()
                release.wait(30)
            ran.append(name)
            return name

        return run

    forever = Deadline(None)
    try:
        futures = [pool.submit(job("a1", wait=True), deadline=forever, who="A")]
        assert started.wait(30)
        futures += [pool.submit(job(n), deadline=forever, who="A") for n in ("a2", "a3")]
        futures += [
            pool.submit(job("b1"), deadline=forever, who="B"),
            pool.submit(job("c1"), deadline=forever, who="C"),
        ]
        release.set()
        assert [f.result(30) for f in futures] == ["a1", "a2", "a3", "b1", "c1"]
        assert ran == ["a1", "a2", "b1", "c1", "a3"]
    finally:
        pool.shutdown()


def test_no_owner_holds_every_reader() -> None:
    """Owner A's slow work occupies at most half the threads; B's work runs beside it."""
    pool = FairPool(2, "test-fair")
    release = threading.Event()
    forever = Deadline(None)
    try:
        slow = [pool.submit(lambda: release.wait(30), deadline=forever, who="A") for _ in range(4)]
        assert pool.submit(lambda: "b", deadline=forever, who="B").result(30) == "b"
        assert not any(f.done() for f in slow)
        release.set()
        assert all(f.result(30) for f in slow)
    finally:
        pool.shutdown()


def test_work_still_queued_at_its_deadline_is_dropped_unrun() -> None:
    pool = FairPool(1, "test-fair")
    release = threading.Event()
    ran: list[str] = []
    try:
        busy = pool.submit(lambda: release.wait(30), deadline=Deadline(None), who="A")
        late = pool.submit(lambda: ran.append("late"), deadline=Deadline(0.0), who="B")
        release.set()
        assert busy.result(30)
        with pytest.raises(ReadTimeout):
            late.result(30)
        assert ran == []
    finally:
        pool.shutdown()
