"""Paging with ``limit``/``offset`` returns every record exactly once, in both orders.

For a random history (0-60 records pushed in random batches, with updates of earlier ids mixed in)
and a random page size (1-25), walking ``GET /v2/orders`` or ``GET /v2/contacts/{collection}`` page by
page gives every record once: by internal id (creation order) by default, and with
``orderby=timestamp_update`` by last update (each push is applied on its own, so a record updated by
a later push moves behind every record last touched before it; records of one push keep creation
order). Each example runs in a fresh account.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Tenant, push
from support.app import Client, app_fixtures
from support.http import read
from support.records import minimal

#: A history: the pushes in order, each a list of record numbers (a number seen before is an update).
History = list[list[int]]
LISTS = {"order": "/v2/orders", "contact": "/v2/contacts/members"}


shared, client, make_tenant = app_fixtures()


@st.composite
def histories(draw: st.DrawFn) -> History:
    """Records 0..n-1 created in order, up to 15 updates each placed after its record's creation, all
    cut into at most 7 consecutive pushes."""
    n = draw(st.integers(0, 60))
    events = list(range(n))
    for target in draw(st.lists(st.integers(0, n - 1), max_size=15)) if n else []:
        events.insert(draw(st.integers(events.index(target) + 1, len(events))), target)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(len(events) - 1, 1)), max_size=6))))
    bounds = list(zip([0, *cuts], [*cuts, len(events)], strict=True))
    return [events[start:end] for start, end in bounds if events[start:end]]


def record(kind: str, number: int, version: int) -> dict[str, Any]:
    fields: dict[str, Any] = {"status": f"v{version}"} if kind == "order" else {"lastname": f"v{version}"}
    if kind == "contact":
        fields["@collection"] = "members"
    return minimal(kind, f"r{number:02}", **fields)


def walk(client: Client, tenant: Tenant, path: str, page_size: int, total: int) -> list[dict[str, Any]]:
    """Every page of ``path`` in turn, until one comes back short."""
    seen: list[dict[str, Any]] = []
    for _ in range(total // page_size + 1):
        page = read(
            client, tenant, f"{path}{'&' if '?' in path else '?'}limit={page_size}&offset={len(seen)}"
        )
        assert len(page) <= page_size
        seen.extend(page)
        if len(page) < page_size:
            return seen
    raise AssertionError(f"more than {total} records came back: {[d['id'] for d in seen]}")


@pytest.mark.parametrize("kind", ["order", "contact"])
@settings(max_examples=15, deadline=None)
@given(history=histories(), page_size=st.integers(1, 25))
def test_paging_returns_every_record_exactly_once_in_both_orders(
    client: Client, make_tenant: Callable[..., Tenant], kind: str, history: History, page_size: int
) -> None:
    tenant = make_tenant("pages")
    if kind == "contact":  # another collection's contact, which the collection's pages never show
        push(client, tenant, [minimal("contact", "r00", **{"@collection": "default"})])
    last_push: dict[int, int] = {}
    version: dict[int, int] = {}
    counter = 0
    for index, numbers in enumerate(history):
        batch = []
        for number in numbers:
            counter += 1
            batch.append(record(kind, number, counter))
            last_push[number], version[number] = index, counter
        push(client, tenant, batch)
    created = sorted(version)  # record numbers were first pushed in increasing order
    by_update = sorted(created, key=lambda number: (last_push[number], number))
    for query, expected in [("", created), ("?orderby=timestamp_update", by_update)]:
        docs = walk(client, tenant, LISTS[kind] + query, page_size, len(created))
        assert [doc["id"] for doc in docs] == [f"r{number:02}" for number in expected], query
        assert docs == [record(kind, number, version[number]) for number in expected]
