"""What a product view is, as pure functions (docs/compatibility.md, "On-site tracking", Product views):
``product_view`` is a ``viewproduct``, or a ``pageview`` whose ``d[type]`` is ``product`` (exactly),
each with a product id ``d[pid]`` shaped like a pushed product's id (no whitespace, at most 512
characters; not ``null``); ``counted_view`` does not count a ``viewproduct`` of the product whose
page the session last viewed (that page's view again).

A unit test: no app, no store (``test_tracking`` checks the sessions' counts through HTTP).
"""

from __future__ import annotations

from typing import Any

import pytest

from patron.tracking.events import counted_view, product_view

pytestmark = pytest.mark.unit

#: (event type, its ``d``, the product viewed or None)
PRODUCT_VIEWS = [
    pytest.param("viewproduct", {"pid": "p-1"}, "p-1", id="viewproduct"),
    pytest.param("pageview", {"type": "product", "pid": "p-1"}, "p-1", id="product-page"),
    pytest.param("viewproduct", {"type": "listing", "pid": "p-1"}, "p-1", id="viewproduct-whatever-its-type"),
    pytest.param("pageview", {"type": "Product", "pid": "p-1"}, None, id="page-type-is-exact"),
    pytest.param("pageview", {"type": "product ", "pid": "p-1"}, None, id="page-type-not-trimmed"),
    pytest.param("pageview", {"type": "listing", "pid": "p-1"}, None, id="another-page-type"),
    pytest.param("pageview", {"pid": "p-1"}, None, id="page-without-type"),
    pytest.param("addtobasket", {"pid": "p-1"}, None, id="basket-add-is-no-view"),
    pytest.param("viewProduct", {"pid": "p-1"}, None, id="event-type-is-exact"),
    pytest.param("viewproduct", {}, None, id="no-pid"),
    pytest.param("viewproduct", {"pid": ""}, None, id="empty-pid"),
    pytest.param("viewproduct", {"pid": "null"}, None, id="pid-null"),
    pytest.param("pageview", {"type": "product", "pid": "undefined"}, None, id="pid-undefined"),
    pytest.param("viewproduct", {"pid": "NULL"}, "NULL", id="pid-null-upper-case-is-an-id"),
    pytest.param("viewproduct", {"pid": "p 1"}, None, id="pid-with-a-space"),
    pytest.param("viewproduct", {"pid": "p\t1"}, None, id="pid-with-a-tab"),
    pytest.param("viewproduct", {"pid": "p-1\n"}, None, id="pid-with-a-final-newline"),
    pytest.param("viewproduct", {"pid": "p\u00a01"}, None, id="pid-with-a-no-break-space"),
    pytest.param(
        "viewproduct", {"pid": "uk:123_456/\u00e9"}, "uk:123_456/\u00e9", id="pid-any-other-characters"
    ),
    pytest.param("viewproduct", {"pid": "x" * 512}, "x" * 512, id="pid-512-characters"),
    pytest.param("viewproduct", {"pid": "x" * 513}, None, id="pid-513-characters"),
    pytest.param("viewproduct", {"pid": ["p-1"]}, None, id="pid-a-list"),
    pytest.param("viewproduct", {"pid": {"id": "p-1"}}, None, id="pid-an-object"),
]


@pytest.mark.parametrize(("kind", "d", "product"), PRODUCT_VIEWS)
def test_product_view(kind: str, d: dict[str, Any], product: str | None) -> None:
    assert product_view(kind, d) == product


PAGE_P1 = {"type": "product", "pid": "p-1"}

#: (event type, its ``d``, the ``d`` of the session's latest page view before it, the view counted)
COUNTED = [
    pytest.param("viewproduct", {"pid": "p-1"}, None, "p-1", id="no-page-before"),
    pytest.param("viewproduct", {"pid": "p-1"}, PAGE_P1, None, id="the-page-s-own-product-again"),
    pytest.param("viewproduct", {"pid": "p-2"}, PAGE_P1, "p-2", id="another-product-than-the-page-s"),
    pytest.param(
        "viewproduct",
        {"pid": "p-1"},
        {"type": "listing", "pid": "p-1"},
        "p-1",
        id="the-page-is-no-product-page",
    ),
    pytest.param(
        "viewproduct", {"pid": "p-1"}, {"type": "product", "pid": "null"}, "p-1", id="the-page-has-no-product"
    ),
    pytest.param("viewproduct", {"pid": "p-1"}, {"type": "home"}, "p-1", id="after-the-home-page"),
    pytest.param("pageview", PAGE_P1, PAGE_P1, "p-1", id="a-product-page-viewed-again-counts"),
    pytest.param(
        "pageview", {"type": "product", "pid": "p-2"}, PAGE_P1, "p-2", id="a-product-page-after-another"
    ),
    pytest.param("viewproduct", {"pid": "null"}, PAGE_P1, None, id="no-product-counts-nothing"),
    pytest.param("viewproduct", {"pid": "null"}, None, None, id="no-product-and-no-page"),
    pytest.param("pageview", {"type": "home"}, PAGE_P1, None, id="a-page-that-is-no-product-view"),
    pytest.param("addtobasket", {"pid": "p-1"}, None, None, id="a-basket-add"),
]


@pytest.mark.parametrize(("kind", "d", "page", "counted"), COUNTED)
def test_counted_view(kind: str, d: dict[str, Any], page: dict[str, Any] | None, counted: str | None) -> None:
    assert counted_view(kind, d, page) == counted
