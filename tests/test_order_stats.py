"""What a profile's stats take from one stored order, as pure functions (docs/compatibility.md,
"Profiles"): whether it counts (``is_valid`` not false, status not cancelled or canceled in any case),
its revenue (``totals.base.grand_total`` where given, else ``grand_total``; at most 10^12 either
way), its items (the line items' quantities, at most 10^12) and when it was placed.

A unit test: no app, no store (``test_profiles`` checks the stats through HTTP).
"""

from __future__ import annotations

from typing import Any

import pytest

from patron.model import stats

pytestmark = pytest.mark.unit

#: The reference's example order (section 5), as stored.
ORDER_S2 = {
    "@type": "order",
    "id": "orderId1",
    "timestamp": "2017-05-01T14:00:00+00:00",
    "grand_total": 1000,
    "currency": "INR",
    "status": "complete",
    "is_valid": True,
    "lineitems": [{"product_id": "prod123", "quantity": 4, "subtotal": 10}],
}


def order(**fields: Any) -> dict[str, Any]:
    return {"@type": "order", "id": "o1", **fields}


@pytest.mark.parametrize(
    ("doc", "counted"),
    [
        pytest.param(ORDER_S2, True, id="reference-example"),
        pytest.param(order(), True, id="nothing-said-counts"),
        pytest.param(order(is_valid=True), True, id="valid"),
        pytest.param(order(is_valid=False), False, id="invalid"),
        pytest.param(order(status="cancelled"), False, id="cancelled"),
        pytest.param(order(status="canceled"), False, id="canceled"),
        pytest.param(order(status="CANCELLED"), False, id="cancelled-upper-case"),
        pytest.param(order(status="Canceled"), False, id="canceled-capitalised"),
        pytest.param(order(status="cancelled", is_valid=True), False, id="cancelled-though-valid"),
        pytest.param(order(status="complete", is_valid=False), False, id="complete-but-invalid"),
        pytest.param(order(status="complete"), True, id="complete"),
        pytest.param(order(status="refunded"), True, id="refunded-counts"),
        pytest.param(order(status="cancel"), True, id="cancel-is-not-cancelled"),
        pytest.param(order(status="cancelled_by_shop"), True, id="a-longer-status"),
        pytest.param(order(status="pending"), True, id="pending"),
    ],
)
def test_counted(doc: dict[str, Any], counted: bool) -> None:
    assert stats.counted(doc) is counted


@pytest.mark.parametrize(
    ("doc", "revenue"),
    [
        pytest.param(ORDER_S2, 1000.0, id="reference-example"),
        pytest.param(order(grand_total=12.5), 12.5, id="grand-total"),
        pytest.param(order(), 0.0, id="no-total"),
        pytest.param(order(grand_total=-20), -20.0, id="negative"),
        pytest.param(
            order(
                grand_total=100, currency="EUR", totals={"base": {"grand_total": 85.25, "currency": "GBP"}}
            ),
            85.25,
            id="base-currency-total-wins",
        ),
        pytest.param(
            order(totals={"base": {"grand_total": 0}}, grand_total=5), 0.0, id="base-total-zero-wins"
        ),
        pytest.param(
            order(grand_total=100, totals={"local": {"grand_total": 120}}), 100.0, id="local-total-not-taken"
        ),
        pytest.param(
            order(grand_total=100, totals={"base": {"tax": 5}}), 100.0, id="base-without-grand-total"
        ),
        pytest.param(order(grand_total=100, totals={}), 100.0, id="empty-totals"),
        pytest.param(order(totals={"base": {"grand_total": 7}}), 7.0, id="base-total-alone"),
        pytest.param(order(grand_total=10**12), 1e12, id="at-the-bound"),
        pytest.param(order(grand_total=10**12 + 1), 1e12, id="over-the-bound"),
        pytest.param(order(grand_total=-1e300), -1e12, id="under-minus-the-bound"),
        pytest.param(order(totals={"base": {"grand_total": 5e20}}), 1e12, id="base-over-the-bound"),
    ],
)
def test_revenue(doc: dict[str, Any], revenue: float) -> None:
    assert stats.revenue(doc) == revenue


def test_revenue_of_a_null_base_total_is_the_grand_total() -> None:
    """Revenue is ``totals.base.grand_total`` where the order gives one, else ``grand_total``: a null
    base total (validation accepts it, and merging drops top-level nulls only) gives none."""
    revenue = stats.revenue(order(grand_total=100, totals={"base": {"grand_total": None}}))
    assert (revenue, type(revenue)) == (100.0, float)


@pytest.mark.parametrize("bound", [10**12, 10**13, -(10**13)], ids=["at", "over", "under"])
def test_revenue_at_its_bound_is_a_float(bound: int) -> None:
    assert type(stats.revenue(order(grand_total=bound))) is float


@pytest.mark.parametrize(
    ("doc", "items"),
    [
        pytest.param(ORDER_S2, 4, id="reference-example"),
        pytest.param(order(), 0, id="no-lineitems"),
        pytest.param(order(lineitems=[]), 0, id="empty-lineitems"),
        pytest.param(
            order(lineitems=[{"product_id": "p1", "quantity": 2}, {"product_id": "p2", "quantity": 3}]),
            5,
            id="quantities-add-up",
        ),
        pytest.param(order(lineitems=[{"product_id": "p1", "quantity": 0}]), 0, id="quantity-zero"),
        pytest.param(
            order(lineitems=[{"product_id": "p1", "quantity": 3, "quantity_refunded": 1}]),
            3,
            id="refunds-do-not-subtract",
        ),
        pytest.param(
            order(lineitems=[{"product_id": "p1", "quantity": 10**12}, {"product_id": "p2", "quantity": 5}]),
            10**12,
            id="bounded-per-order",
        ),
    ],
)
def test_items(doc: dict[str, Any], items: int) -> None:
    found = stats.items(doc)
    assert (type(found), found) == (int, items)


@pytest.mark.parametrize(
    ("doc", "placed_at"),
    [
        pytest.param(ORDER_S2, "2017-05-01T14:00:00+00:00", id="reference-example"),
        pytest.param(order(), None, id="no-timestamp"),
        pytest.param(
            order(timestamp="2023-05-25T15:32:52.500000+00:00"),
            "2023-05-25T15:32:52.500000+00:00",
            id="fraction",
        ),
    ],
)
def test_placed_at(doc: dict[str, Any], placed_at: str | None) -> None:
    assert stats.placed_at(doc) == placed_at
