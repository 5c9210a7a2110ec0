"""The read and single-record endpoints: contacts (collections, by email, by collection, one), orders,
products (``active``, ``includeVariants``), custom events (filters), paging parameters, 404s, and
account isolation. Records are written through ``/v2/push`` or the single-record POSTs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import Tenant, push, wait_applied
from patron.api.edge import edge_of
from patron.ingest.worker import apply_round
from patron.runtime import queue_kinds
from support.app import Client, app_fixtures, running_app
from support.http import assert_problem, barrier, errors, nothing_stored, post, read
from support.records import minimal

shared, client, make_tenant = app_fixtures()


def ids(docs: list[dict[str, Any]]) -> list[str]:
    return [doc["id"] for doc in docs]


def post_one(client: Client, tenant: Tenant, path: str, body: Any, status: int = 202) -> dict[str, Any]:
    """A single-record POST that succeeds with ``status``, waited for until applied; its reply."""
    response = post(client, tenant, body, path)
    assert response.status_code == status, response.text
    reply: dict[str, Any] = response.json()
    assert (reply["status"], reply["accepted"], reply["rejected"]) == ("OK", 1, 0)
    wait_applied(client, tenant, reply["request_id"])
    return reply


def contacts(*specs: tuple[str, str, str]) -> list[dict[str, Any]]:
    """Contacts from (collection, id, email)."""
    return [minimal("contact", cid, email=email, **{"@collection": col}) for col, cid, email in specs]


# contacts ---------------------------------------------------------------------------------------


def test_contacts_lists_collections_with_counts(client: Client, tenant: Tenant) -> None:
    assert read(client, tenant, "/v2/contacts") == []
    push(client, tenant, contacts(*(("customers", f"c{i}", f"c{i}@example.com") for i in range(3))))
    push(client, tenant, contacts(("default", "d1", "d1@example.com"), ("default", "d2", "d2@example.com")))
    push(client, tenant, contacts(("subscribers", "s1", "s1@example.com")))
    push(client, tenant, contacts(("default", "d1", "new@example.com")))  # an update counts once
    assert read(client, tenant, "/v2/contacts") == [
        {"collection": "customers", "count": 3},
        {"collection": "default", "count": 2},
        {"collection": "subscribers", "count": 1},
    ]
    assert read(client, tenant, "/v2/contacts?limit=1&offset=1") == [{"collection": "default", "count": 2}]


def test_contacts_by_email_spans_collections(client: Client, tenant: Tenant) -> None:
    push(
        client,
        tenant,
        contacts(
            ("default", "a", "bob@example.com"),
            ("default", "b", "ann@example.com"),
            ("subscribers", "a", "bob@example.com"),
        ),
    )
    found = read(client, tenant, "/v2/contacts?email=bob@example.com")
    assert [(doc["@collection"], doc["id"], doc["email"]) for doc in found] == [
        ("default", "a", "bob@example.com"),
        ("subscribers", "a", "bob@example.com"),
    ]
    assert read(client, tenant, "/v2/contacts?email=nobody@example.com") == []
    push(client, tenant, contacts(("default", "a", "robert@example.com")))  # a changed email moves
    assert ids(read(client, tenant, "/v2/contacts?email=robert@example.com")) == ["a"]
    assert [d["@collection"] for d in read(client, tenant, "/v2/contacts?email=bob@example.com")] == [
        "subscribers"
    ]


def test_contacts_of_a_collection(client: Client, tenant: Tenant) -> None:
    push(client, tenant, contacts(("default", "d1", "x@example.com"), ("vip", "v1", "y@example.com")))
    push(client, tenant, contacts(("vip", "v2", "z@example.com")))
    assert read(client, tenant, "/v2/contacts/vip") == contacts(
        ("vip", "v1", "y@example.com"), ("vip", "v2", "z@example.com")
    )
    assert ids(read(client, tenant, "/v2/contacts/default")) == ["d1"]
    assert read(client, tenant, "/v2/contacts/nothing-here") == []
    assert read(client, tenant, "/v2/contacts/vip/v1") == minimal(
        "contact", "v1", email="y@example.com", **{"@collection": "vip"}
    )


def test_posting_a_contact_takes_collection_and_id_from_the_url(client: Client, tenant: Tenant) -> None:
    post_one(client, tenant, "/v2/contacts/subscribers/c9", {"email": "c9@example.com", "firstname": "Cy"})
    assert read(client, tenant, "/v2/contacts/subscribers/c9") == {
        "@type": "contact",
        "@collection": "subscribers",
        "id": "c9",
        "email": "c9@example.com",
        "firstname": "Cy",
    }
    # The same fields in the body are fine; a numeric id matching the URL is stored as a string.
    body = {"@type": "contact", "@collection": "subscribers", "id": 42, "lastname": "Ng"}
    post_one(client, tenant, "/v2/contacts/subscribers/42", body)
    assert read(client, tenant, "/v2/contacts/subscribers/42")["id"] == "42"
    # A second POST merges into the stored contact.
    post_one(client, tenant, "/v2/contacts/subscribers/c9", {"firstname": None, "lastname": "Doe"})
    got = read(client, tenant, "/v2/contacts/subscribers/c9")
    assert (got.get("firstname"), got["lastname"], got["email"]) == (None, "Doe", "c9@example.com")
    assert read(client, tenant, "/v2/contacts") == [{"collection": "subscribers", "count": 2}]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v2/contacts/default/c1", {"id": "c2"}, "root > id"),
        ("/v2/contacts/default/c1", {"@collection": "vip"}, "root > @collection"),
        ("/v2/contacts/default/c1", {"@type": "order"}, "root > @type"),
        ("/v2/orders/o1", {"id": "o2"}, "root > id"),
        ("/v2/products/p1", {"id": "p2"}, "root > id"),
        ("/v2/products/p1", {"@type": "contact"}, "root > @type"),
    ],
)
def test_a_body_disagreeing_with_the_url_is_a_400_naming_the_field(
    client: Client, tenant: Tenant, path: str, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(post(client, tenant, body, path), 400, field)
    assert "URL" in problem["detail"]
    nothing_stored(client, tenant, "contact", "order", "product")
    assert read(client, tenant, "/v2/contacts") == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v2/contacts/default/c1", {"email": "not-an-email"}, "root > email"),
        (
            "/v2/contacts/default/c1",
            {"channels": {"sms": {"allow_marketing": "yes"}}},
            "root > channels > sms > allow_marketing",
        ),
        ("/v2/contacts/default/c%201", {"email": "a@example.com"}, "contact_id"),
        (
            "/v2/orders/o1",
            {"lineitems": [{"product_id": "p", "quantity": "x"}]},
            "root > lineitems > 0 > quantity",
        ),
        ("/v2/orders/o1", {"customer": {"email": "nope"}}, "root > customer > email"),
        ("/v2/orders/o1", [{"status": "x"}], "root"),
        ("/v2/products/p1", {"price": "cheap"}, "root > price"),
        ("/v2/products/p1", {"currency": "pounds"}, "root > currency"),
        ("/v2/custom-events", {"id": "e1", "event_type": "signup"}, "root > identity_email"),
        ("/v2/custom-events", {"event_type": "signup", "identity_email": "a@example.com"}, "root"),
    ],
)
def test_an_invalid_single_record_is_a_400_naming_the_path_and_stores_nothing(
    client: Client, tenant: Tenant, path: str, body: Any, field: str
) -> None:
    assert_problem(post(client, tenant, body, path), 400, field)
    nothing_stored(client, tenant, "contact", "order", "product", "custom_event")


def test_a_single_record_post_warns_about_unknown_fields(client: Client, tenant: Tenant) -> None:
    reply = post_one(client, tenant, "/v2/orders/o1", {"status": "new", "colour": "red"})
    assert [w["path"] for w in reply["warnings"]] == ["root > colour"]
    assert read(client, tenant, "/v2/orders/o1") == minimal("order", "o1", status="new")


# orders -----------------------------------------------------------------------------------------


def test_orders_list_and_read_one(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [minimal("order", f"o{i}", grand_total=i * 1.5) for i in range(12)])
    assert ids(read(client, tenant, "/v2/orders")) == [f"o{i}" for i in range(10)]
    assert read(client, tenant, "/v2/orders/o11") == minimal("order", "o11", grand_total=16.5)


def test_posting_an_order_creates_then_merges(client: Client, tenant: Tenant) -> None:
    order = {"status": "pending", "currency": "eur", "lineitems": [{"product_id": "p1", "quantity": 2}]}
    reply = post_one(client, tenant, "/v2/orders/o-1", order)
    assert "errors" not in reply
    assert read(client, tenant, "/v2/orders/o-1") == {
        "@type": "order",
        "id": "o-1",
        **order,
        "currency": "EUR",
    }
    post_one(client, tenant, "/v2/orders/o-1", {"status": "complete"})
    assert read(client, tenant, "/v2/orders/o-1") == {
        "@type": "order",
        "id": "o-1",
        **order,
        "currency": "EUR",
        "status": "complete",
    }
    assert ids(read(client, tenant, "/v2/orders")) == ["o-1"]


# products ---------------------------------------------------------------------------------------

PRODUCTS = [
    minimal("product", "on", is_active=True),
    minimal("product", "off", is_active=False),
    minimal("product", "unsaid", title="no is_active: counts as active"),
    minimal("product", "on-variant", is_active=True, is_variant=True, parent_id="on"),
    minimal("product", "off-variant", is_active=False, is_variant=True, parent_id="off"),
    minimal("product", "not-variant", is_variant=False),
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["on", "off", "unsaid", "not-variant"]),
        ("?active=true", ["on", "unsaid", "not-variant"]),
        ("?active=false", ["off"]),
        ("?includeVariants=true", ["on", "off", "unsaid", "on-variant", "off-variant", "not-variant"]),
        ("?includeVariants=false", ["on", "off", "unsaid", "not-variant"]),
        ("?includeVariants=true&active=true", ["on", "unsaid", "on-variant", "not-variant"]),
        ("?includeVariants=true&active=false", ["off", "off-variant"]),
    ],
)
def test_products_filter_on_active_and_hide_variants_by_default(
    client: Client, tenant: Tenant, query: str, expected: list[str]
) -> None:
    push(client, tenant, PRODUCTS)
    assert ids(read(client, tenant, f"/v2/products{query}")) == expected


def test_a_product_update_moves_it_between_filters(client: Client, tenant: Tenant) -> None:
    push(client, tenant, PRODUCTS)
    push(
        client,
        tenant,
        [
            {"@type": "product", "id": "on", "is_active": False},
            {"@type": "product", "id": "off", "is_active": None},  # deleted: active again
            {"@type": "product", "id": "unsaid", "is_variant": True},
        ],
    )
    assert ids(read(client, tenant, "/v2/products?active=false")) == ["on"]
    assert ids(read(client, tenant, "/v2/products?active=true")) == ["off", "not-variant"]


def test_posting_a_product_is_201_and_reads_back(client: Client, tenant: Tenant) -> None:
    product = {
        "title": "Shoe",
        "price": 59.0,
        "currency": "gbp",
        "listings": [{"store": "uk", "price": 59.0}],
    }
    reply = post_one(client, tenant, "/v2/products/sku-1", product, status=201)
    assert reply.keys() == {"status", "request_id", "accepted", "rejected"}
    assert read(client, tenant, "/v2/products/sku-1") == {
        "@type": "product",
        "id": "sku-1",
        **product,
        "currency": "GBP",
    }
    assert ids(read(client, tenant, "/v2/products")) == ["sku-1"]


# custom events ----------------------------------------------------------------------------------

EVENTS = [
    minimal("custom_event", "e1", event_type="signup", identity_email="ann@example.com", profile_id="p-1"),
    minimal("custom_event", "e2", event_type="wishlist", identity_email="ann@example.com"),
    {"@type": "custom_event", "id": "e3", "event_type": "signup", "identity_account_id": "cust-7"},
    {"@type": "custom_event", "id": "e4", "event_type": "wishlist", "profile_id": "p-1"},
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["e1", "e2", "e3", "e4", "e5"]),
        ("?event_type=signup", ["e1", "e3", "e5"]),
        ("?identity_email=ann@example.com", ["e1", "e2"]),
        ("?identity_account_id=cust-7", ["e3", "e5"]),
        ("?profile_id=p-1", ["e1", "e4"]),
        ("?event_type=wishlist&profile_id=p-1", ["e4"]),
        ("?event_type=nothing", []),
    ],
)
def test_custom_events_are_posted_and_filtered(
    client: Client, tenant: Tenant, query: str, expected: list[str]
) -> None:
    push(client, tenant, EVENTS)
    event = {
        "id": "e5",
        "event_type": "signup",
        "identity_account_id": "cust-7",
        "timestamp": "2024-01-01T01:00:00+01:00",
    }
    post_one(client, tenant, "/v2/custom-events", event)
    assert ids(read(client, tenant, f"/v2/custom-events{query}")) == expected
    if "e5" in expected:
        [got] = [e for e in read(client, tenant, f"/v2/custom-events{query}") if e["id"] == "e5"]
        assert got == {"@type": "custom_event", **event, "timestamp": "2024-01-01T00:00:00+00:00"}


# unknown ids, paging parameters -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v2/contacts/default/nope",
        "/v2/contacts/other/c1",
        "/v2/orders/nope",
        "/v2/products/nope",
        "/v2/products/C1",
    ],
)
def test_an_unknown_id_is_a_404_problem(client: Client, tenant: Tenant, path: str) -> None:
    push(client, tenant, [minimal("contact", "c1")])
    push(client, tenant, [minimal("product", "c1")])
    assert_problem(client.get(path, headers=tenant.headers), 404, "id")


def test_limit_defaults_to_10_is_clamped_to_250_and_offset_skips(client: Client, tenant: Tenant) -> None:
    everything = [f"o{i:03}" for i in range(260)]
    for start in range(0, 260, 100):
        push(client, tenant, [minimal("order", i) for i in everything[start : start + 100]])
    assert ids(read(client, tenant, "/v2/orders")) == everything[:10]
    assert ids(read(client, tenant, "/v2/orders?limit=250")) == everything[:250]
    assert ids(read(client, tenant, "/v2/orders?limit=251")) == everything[:250]
    assert ids(read(client, tenant, "/v2/orders?limit=100000")) == everything[:250]
    assert ids(read(client, tenant, "/v2/orders?offset=250&limit=250")) == everything[250:]
    assert ids(read(client, tenant, "/v2/orders?offset=255")) == everything[255:]
    assert read(client, tenant, "/v2/orders?offset=260") == []
    assert ids(read(client, tenant, "/v2/orders?limit=3&offset=7")) == everything[7:10]


def test_orderby_timestamp_update_puts_updated_records_last(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [minimal("order", f"o{i}") for i in range(4)])
    push(client, tenant, [minimal("order", "o1", status="shipped")])
    push(client, tenant, [minimal("order", "o0", status="shipped")])
    assert ids(read(client, tenant, "/v2/orders")) == ["o0", "o1", "o2", "o3"]
    assert ids(read(client, tenant, "/v2/orders?orderby=timestamp_update")) == ["o2", "o3", "o1", "o0"]
    assert ids(read(client, tenant, "/v2/orders?orderby=timestamp_update&limit=2&offset=1")) == ["o3", "o1"]


LIST_PATHS = ["/v2/orders", "/v2/contacts", "/v2/contacts/default", "/v2/products", "/v2/custom-events"]


@pytest.mark.parametrize("path", LIST_PATHS)
@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=ten", "limit"), ("limit=1.5", "limit"), ("offset=-1", "offset"), ("offset=x", "offset")],
)
def test_a_bad_paging_parameter_is_a_400_naming_it(
    client: Client, tenant: Tenant, path: str, query: str, field: str
) -> None:
    assert_problem(client.get(f"{path}?{query}", headers=tenant.headers), 400, field)


@pytest.mark.parametrize(
    ("path", "field"),
    [("/v2/orders?orderby=newest", "orderby"), ("/v2/products?active=maybe", "active")],
)
def test_a_bad_filter_is_a_400_naming_it(client: Client, tenant: Tenant, path: str, field: str) -> None:
    assert_problem(client.get(path, headers=tenant.headers), 400, field)


@pytest.mark.parametrize(
    ("record", "path"),
    [
        pytest.param(minimal("order", "2024/0001"), "/v2/orders/2024%2F0001", id="order-id"),
        pytest.param(minimal("product", "shirt/red"), "/v2/products/shirt%2Fred", id="product-id"),
    ],
)
def test_an_id_with_a_slash_reads_back(
    client: Client, tenant: Tenant, record: dict[str, Any], path: str
) -> None:
    assert push(client, tenant, [record])["accepted"] == 1
    assert read(client, tenant, path) == record


def test_an_update_applied_in_one_round_with_earlier_pushes_still_sorts_last(
    tmp_path: Path, new_database_url: Callable[[], str | None]
) -> None:
    with running_app(tmp_path, new_database_url()) as app:
        client, tenant = app.client, app.tenant()
        edge_of(client.app).worker.stop()
        for batch in [
            [minimal("order", f"o{i}") for i in range(3)],
            [minimal("order", "o0", status="shipped")],
        ]:
            assert post(client, tenant, batch).status_code == 202
        assert apply_round(app.store, queue_kinds()) == 2  # both pushes in one round, as a busy worker does
        assert read(client, tenant, "/v2/orders/o0")["status"] == "shipped"
        assert ids(read(client, tenant, "/v2/orders?orderby=timestamp_update")) == ["o1", "o2", "o0"]


# isolation --------------------------------------------------------------------------------------


def test_another_account_never_sees_these_records(client: Client, make_tenant: Callable[..., Tenant]) -> None:
    shop, other = make_tenant("shop"), make_tenant("other")
    written = {
        "contact": minimal("contact", "x1", email="bob@example.com"),
        "order": minimal("order", "x1", status="mine"),
        "product": minimal("product", "x1", title="mine"),
        "custom_event": minimal("custom_event", "x1", event_type="signup", identity_email="bob@example.com"),
    }
    for record in written.values():
        push(client, shop, [record])
    push(client, shop, [minimal("order", "bad", currency="XYZ")])
    for path in ["/v2/contacts", "/v2/contacts?email=bob@example.com", "/v2/contacts/default", "/v2/orders"]:
        assert read(client, other, path) == [], path
    for path in [
        "/v2/products?includeVariants=true",
        "/v2/custom-events?event_type=signup",
        "/v2/push/_errors",
    ]:
        assert read(client, other, path) == [], path
    for path in ["/v2/contacts/default/x1", "/v2/orders/x1", "/v2/products/x1"]:
        assert_problem(client.get(path, headers=other.headers), 404, "id")
    # The other account writing the same ids changes nothing here.
    push(client, other, [minimal("order", "x1", status="theirs")])
    post_one(client, other, "/v2/products/x1", {"title": "theirs"}, status=201)
    barrier(client, shop)
    assert read(client, shop, "/v2/orders/x1") == written["order"]
    assert read(client, shop, "/v2/products/x1") == written["product"]
    assert read(client, shop, "/v2/contacts/default/x1") == {**written["contact"], "@collection": "default"}
    assert [e["id"] for e in errors(client, shop)] == ["bad"]
    assert read(client, other, "/v2/orders/x1")["status"] == "theirs"
