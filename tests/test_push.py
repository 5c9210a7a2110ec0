"""``POST /v2/push`` through HTTP: the reference's example bodies, the reply, merge rules, application
order, batch rules, per-record validation, ``/v2/push/_errors``, request status, backlog and rate limit.

Stored values are normalised: ids are strings, timestamps UTC with ``+00:00``, currencies and
countries upper case. The helpers these tests use are in ``support`` (shared with the other modules).

The module runs one app (server and worker) for all its tests, each test on fresh accounts (accounts
are sealed): ``client`` and ``make_tenant`` below override conftest's (so ``tenant`` uses them too).
Tests that stop the worker take an app of their own, ``isolated`` (``support.app``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from conftest import Tenant, push, wait_applied
from patron import accounts
from patron.api.edge import edge_of
from patron.ingest.worker import apply_round
from patron.runtime import queue_kinds
from support.app import App, Client, app_fixtures
from support.http import assert_problem, barrier, errors, nothing_stored, post, read, read_one, stored
from support.records import minimal

TOO_LARGE = "Payload invalid: Record is too large."

shared, client, make_tenant = app_fixtures()


# the reference's example bodies (section 5) -----------------------------------------------------

CONTACT_S2 = {
    "email": "testone@gmail.com",
    "id": "test1",
    "customer_id": "userId1",
    "firstname": "test",
    "lastname": "one",
    "@type": "contact",
    "properties": {"field1": "val1", "ip": "0.0.0.0"},
    "marketing_optin": "EXPLICITLY_OPTEDOUT",
    "channels": {"sms": {"allow_marketing": False, "allow_transactional": False}},
}
CONTACT_S22 = {
    "@collection": "default",
    "@type": "contact",
    "timestamp_acquired": "2018-04-19T09:00:00+00",
    "id": "uuid_4567",
    "customer_id": "uuid_4567",
    "email": "bob@ometria.com",
    "marketing_optin": "EXPLICITLY_OPTEDIN",
    "@force_optin": True,
}
ORDER_S2 = {
    "id": "orderId1",
    "timestamp": "2017-05-01T14:00:00Z",
    "grand_total": 1000,
    "currency": "INR",
    "ip_address": "0.0.0.0",
    "shipping_address": {
        "city": "Kolkata",
        "state": "West Bengal",
        "country_code": "IN",
        "postcode": "700001",
    },
    "customer": {"id": "userId1", "email": "testone@gmail.com", "firstname": "test", "lastname": "one"},
    "@type": "order",
    "status": "complete",
    "is_valid": True,
    "properties": {"field1": "val1"},
    "lineitems": [
        {
            "product_id": "prod123",
            "quantity": 4,
            "subtotal": 10,
            "variant_options": [{"id": "newid", "type": "size", "label": "5"}],
        }
    ],
}
PRODUCT_S25 = {
    "@type": "product",
    "id": "uk:123_456",
    "is_active": True,
    "is_variant": True,
    "price": 10.0,
    "currency": "GBP",
    "url": "https://shop/products/x",
    "properties": {"Size": "M"},
    "sku": "SKU1",
    "title": "T | M",
    "image_url": "https://shop/images/x.jpg",
    "listings": [
        {
            "title": "T | M",
            "is_active": True,
            "currency": "GBP",
            "price": 10.0,
            "url": "https://shop/products/x",
            "image_url": "https://shop/images/x.jpg",
            "store": "shop.example",
        }
    ],
}
EVENT_S22 = {
    "@type": "custom_event",
    "id": "123456789",
    "timestamp": "2023-05-25T15:32:52+00:00",
    "event_type": "example",
    "properties": {
        "Store": "example store",
        "event_time": "2023-05-25T15:32:25Z",
        "product_id": ["12345"],
        "variant_id": ["54321"],
        "product_name": "Example product",
        "product_price": 20.99,
        "product_quantity": 1,
    },
    "identity_email": "ometria@example.com",
}

#: (pushed record, what reads back): the collection is filled in, directives are not stored, and
#: timestamps come back in UTC with ``+00:00``.
EXAMPLES = [
    pytest.param(CONTACT_S2, {**CONTACT_S2, "@collection": "default"}, id="contact-s2"),
    pytest.param(
        CONTACT_S22,
        {
            **{k: v for k, v in CONTACT_S22.items() if k != "@force_optin"},
            "timestamp_acquired": "2018-04-19T09:00:00+00:00",
        },
        id="contact-s22-email-change",
    ),
    pytest.param(ORDER_S2, {**ORDER_S2, "timestamp": "2017-05-01T14:00:00+00:00"}, id="order-s2"),
    pytest.param(PRODUCT_S25, PRODUCT_S25, id="product-s25"),
    pytest.param(EVENT_S22, EVENT_S22, id="custom-event-s22"),
]


@pytest.mark.parametrize(("record", "expected"), EXAMPLES)
def test_reference_examples_push_and_read_back(
    client: Client, tenant: Tenant, record: dict[str, Any], expected: dict[str, Any]
) -> None:
    reply = push(client, tenant, [record])
    assert (reply["accepted"], reply["rejected"]) == (1, 0)
    assert "warnings" not in reply
    got = read_one(client, tenant, record["@type"], record["id"])
    assert got.keys() == expected.keys()
    for field, value in expected.items():
        assert got[field] == value, field


def test_reference_product_posted_to_its_url_reads_back(client: Client, tenant: Tenant) -> None:
    response = post(client, tenant, PRODUCT_S25, "/v2/products/uk:123_456")
    assert response.status_code == 201, response.text
    assert response.json()["accepted"] == 1
    wait_applied(client, tenant, response.json()["request_id"])
    assert read(client, tenant, "/v2/products/uk:123_456") == PRODUCT_S25


def test_reference_order_cancel_changes_a_stored_order(client: Client, tenant: Tenant) -> None:
    order = {**ORDER_S2, "id": "123551"}
    push(client, tenant, [order])
    push(client, tenant, [{"@type": "order", "id": "123551", "status": "cancelled", "is_valid": False}])
    assert read(client, tenant, "/v2/orders/123551") == {
        **order,
        "timestamp": "2017-05-01T14:00:00+00:00",
        "status": "cancelled",
        "is_valid": False,
    }


# the reply --------------------------------------------------------------------------------------


def test_reply_counts_errors_warnings_and_queue_headers(client: Client, tenant: Tenant) -> None:
    batch = [
        minimal("order", "ok"),
        minimal("order", "bad", lineitems=[{"product_id": "p1", "quantity": "two"}]),
        minimal("order", "odd", nickname="x"),
    ]
    response = post(client, tenant, batch)
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    reply = response.json()
    assert reply.keys() == {"status", "request_id", "accepted", "rejected", "errors", "warnings"}
    assert reply["status"] == "OK"
    assert str(uuid.UUID(reply["request_id"])) == reply["request_id"]
    assert (reply["accepted"], reply["rejected"]) == (2, 1)
    assert reply["errors"] == [
        {
            "index": 1,
            "id": "bad",
            "error_path": "root > lineitems > 0 > quantity",
            "error_message": "Expected `int`, got `str`",
        }
    ]
    assert reply["warnings"] == [
        {"index": 2, "id": "odd", "path": "root > nickname", "message": "unknown field; not stored"}
    ]
    # A fresh account had nothing queued: the remaining allowance is the limit less this request.
    assert response.headers["x-queuesize-limit"] == str(accounts.DEFAULT_QUEUE_LIMIT)
    assert response.headers["x-queuesize-remaining"] == str(accounts.DEFAULT_QUEUE_LIMIT - 2)


def test_a_clean_push_replies_like_ometria(client: Client, tenant: Tenant) -> None:
    reply = push(client, tenant, [minimal("order", "a")])
    assert reply.keys() == {"status", "request_id", "accepted", "rejected"}
    assert (reply["status"], reply["accepted"], reply["rejected"]) == ("OK", 1, 0)


# merge rules ------------------------------------------------------------------------------------


def test_a_partial_update_keeps_the_other_fields(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [ORDER_S2])
    push(client, tenant, [{"@type": "order", "id": "orderId1", "status": "shipped", "channel": "online"}])
    got = read(client, tenant, "/v2/orders/orderId1")
    assert got == {
        **ORDER_S2,
        "timestamp": "2017-05-01T14:00:00+00:00",
        "status": "shipped",
        "channel": "online",
    }


def test_null_deletes_a_field_and_the_string_null_is_kept(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [minimal("contact", "c1", firstname="Ann", lastname="Lee", gender="f")])
    push(client, tenant, [{"@type": "contact", "id": "c1", "firstname": None, "lastname": "null"}])
    got = read(client, tenant, "/v2/contacts/default/c1")
    assert "firstname" not in got
    assert got["lastname"] == "null"
    assert got["gender"] == "f"


def test_a_deleted_email_no_longer_finds_the_contact(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [minimal("contact", "c1")])
    push(client, tenant, [{"@type": "contact", "id": "c1", "email": None}])
    assert "email" not in read(client, tenant, "/v2/contacts/default/c1")
    assert read(client, tenant, "/v2/contacts?email=c1@example.com") == []


def test_properties_merge_key_by_key(client: Client, tenant: Tenant) -> None:
    first = {"a": 1, "b": 2, "c": {"x": 1}, "d": [1, 2]}
    second = {"b": None, "c": {"y": 2}, "d": [3], "e": "null"}
    push(client, tenant, [minimal("order", "o1", properties=first)])
    push(client, tenant, [minimal("order", "o1", properties=second)])
    assert read(client, tenant, "/v2/orders/o1")["properties"] == {
        "a": 1,
        "c": {"y": 2},
        "d": [3],
        "e": "null",
    }


ITEM = {"product_id": "p1", "quantity": 1, "unit_price": 5.0}
LISTING = {"store": "uk", "price": 5.0, "currency": "GBP"}
ATTRIBUTE = {"type": "colour", "id": "red", "label": "Red"}


@pytest.mark.parametrize(
    ("record_type", "field", "first", "second"),
    [
        ("order", "lineitems", [ITEM, {**ITEM, "product_id": "p2"}], [{**ITEM, "quantity": 3}]),
        (
            "order",
            "lineitems",
            [{**ITEM, "variant_options": [{"id": "s", "type": "size", "label": "S"}]}],
            [{**ITEM, "variant_options": [{"id": "m", "type": "size", "label": "M"}]}],
        ),
        ("product", "listings", [LISTING, {**LISTING, "store": "us", "currency": "USD"}], [LISTING]),
        ("product", "attributes", [ATTRIBUTE, {**ATTRIBUTE, "id": "big", "type": "size"}], []),
        ("contact", "store_ids", ["a", "b"], ["c"]),
    ],
)
def test_arrays_replace_whole(
    client: Client, tenant: Tenant, record_type: str, field: str, first: list[Any], second: list[Any]
) -> None:
    push(client, tenant, [minimal(record_type, "x1", **{field: first})])
    push(client, tenant, [{"@type": record_type, "id": "x1", field: second}])
    assert read_one(client, tenant, record_type, "x1")[field] == second


@pytest.mark.parametrize("record_type", ["contact", "order", "product"])
def test_merge_false_replaces_the_whole_document(client: Client, tenant: Tenant, record_type: str) -> None:
    push(client, tenant, [minimal(record_type, "r1", properties={"a": 1})])
    replacement = minimal(record_type, "r1", **{"@merge": False})
    push(client, tenant, [replacement])
    expected = {k: v for k, v in replacement.items() if k != "@merge"}
    if record_type == "contact":
        expected["@collection"] = "default"
    assert read_one(client, tenant, record_type, "r1") == expected


def test_merge_true_merges(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [minimal("product", "p1", title="Shoe", is_in_stock=True)])
    push(client, tenant, [{"@type": "product", "id": "p1", "is_in_stock": False, "@merge": True}])
    assert read(client, tenant, "/v2/products/p1") == minimal(
        "product", "p1", title="Shoe", is_in_stock=False
    )


# application order and idempotence --------------------------------------------------------------


def test_pushes_of_one_id_apply_in_arrival_order(client: Client, tenant: Tenant) -> None:
    replies = [push(client, tenant, [minimal("order", "o1", status=f"v{i}")], wait=False) for i in range(6)]
    wait_applied(client, tenant, replies[-1]["request_id"])
    assert read(client, tenant, "/v2/orders/o1")["status"] == "v5"


def test_the_same_id_twice_in_one_batch_ends_at_the_later(client: Client, tenant: Tenant) -> None:
    reply = push(
        client,
        tenant,
        [minimal("order", "o1", status="first", channel="web"), minimal("order", "o1", status="second")],
    )
    assert reply["accepted"] == 2
    assert read(client, tenant, "/v2/orders/o1") == minimal("order", "o1", status="second", channel="web")
    assert list(stored(client, tenant, "order")) == ["o1"]


def test_pushing_the_same_batch_twice_leaves_the_same_state(client: Client, tenant: Tenant) -> None:
    batch = [
        ORDER_S2,
        minimal("order", "o2", status="new", properties={"a": 1}),
        minimal("order", "o2", properties={"a": None, "b": 2}),
        minimal("order", "o3", channel=None),
    ]
    push(client, tenant, batch)
    first = read(client, tenant, "/v2/orders?limit=250")
    push(client, tenant, batch)
    assert read(client, tenant, "/v2/orders?limit=250") == first
    assert [doc["id"] for doc in first] == ["orderId1", "o2", "o3"]


# batch rules ------------------------------------------------------------------------------------


def test_a_mixed_type_batch_is_refused_and_stores_nothing(client: Client, tenant: Tenant) -> None:
    response = post(client, tenant, [minimal("contact", "c1"), minimal("order", "o1")])
    problem = assert_problem(response, 400, "root")
    assert "contact" in problem["detail"] and "order" in problem["detail"]
    assert response.headers["x-queuesize-limit"] == str(accounts.DEFAULT_QUEUE_LIMIT)
    nothing_stored(client, tenant, "contact", "order")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param([], "body", id="empty-array"),
        pytest.param([minimal("order", f"o{i}") for i in range(101)], "body", id="101-records"),
        pytest.param(minimal("order", "o1"), "body", id="an-object"),
        pytest.param("orders", "body", id="a-string"),
        pytest.param(b'[{"@type":"order","id":"o1"}', "body", id="malformed-json"),
        pytest.param([minimal("order", "o1"), 5], "root > 1", id="a-number-among-records"),
        pytest.param([{"@type": "invoice", "id": "o1"}], "root > 0 > @type", id="unknown-type"),
        pytest.param([minimal("order", "o1"), {"id": "o2"}], "root > 1 > @type", id="missing-type"),
    ],
)
def test_a_body_that_is_not_a_push_is_refused_whole(
    client: Client, tenant: Tenant, body: Any, field: str
) -> None:
    assert_problem(post(client, tenant, body), 400, field)
    nothing_stored(client, tenant, "order")


def test_a_batch_of_100_records_is_accepted(client: Client, tenant: Tenant) -> None:
    reply = push(client, tenant, [minimal("order", f"o{i}") for i in range(100)])
    assert (reply["accepted"], reply["rejected"]) == (100, 0)
    assert len(stored(client, tenant, "order")) == 100


def sized(record_id: str, size: int) -> dict[str, Any]:
    """An order whose compact JSON is exactly ``size`` bytes."""
    record = minimal("order", record_id, properties={"blob": ""})
    record["properties"]["blob"] = "x" * (size - len(json.dumps(record, separators=(",", ":"))))
    assert len(json.dumps(record, separators=(",", ":"))) == size
    return record


def test_a_record_over_60000_bytes_is_rejected_and_its_neighbours_land(
    client: Client, tenant: Tenant
) -> None:
    batch = [
        minimal("order", "before"),
        sized("big", 60_001),
        sized("limit", 60_000),
        minimal("order", "after"),
    ]
    response = post(client, tenant, batch)
    assert response.status_code == 202
    reply = response.json()
    assert (reply["accepted"], reply["rejected"]) == (3, 1)
    assert reply["errors"] == [{"index": 1, "id": "big", "error_path": "root", "error_message": TOO_LARGE}]
    wait_applied(client, tenant, reply["request_id"])
    assert list(stored(client, tenant, "order")) == ["before", "limit", "after"]
    assert read(client, tenant, "/v2/orders/limit") == sized("limit", 60_000)
    [error] = errors(client, tenant)
    assert (error["id"], error["error_path"], error["error_message"]) == ("big", "root", TOO_LARGE)


# per-record validation --------------------------------------------------------------------------

DROP = object()

#: (record type, fields changed on a valid record (DROP removes one), Ometria path of the error)
INVALID = [
    pytest.param(
        "order",
        {"lineitems": [{"product_id": "p", "quantity": "2"}]},
        "root > lineitems > 0 > quantity",
        id="quantity-string",
    ),
    pytest.param(
        "order",
        {"lineitems": [{"product_id": "p", "quantity": -1}]},
        "root > lineitems > 0 > quantity",
        id="quantity-negative",
    ),
    pytest.param("order", {"lineitems": [{"quantity": 1}]}, "root > lineitems > 0", id="lineitem-no-product"),
    pytest.param(
        "order", {"customer": {"id": "c1", "email": "x"}}, "root > customer > email", id="customer-email"
    ),
    pytest.param("order", {"id": "has space"}, "root > id", id="order-id-with-space"),
    pytest.param("contact", {"id": "has\ttab"}, "root > id", id="contact-id-with-tab"),
    pytest.param("order", {"id": 1.5}, "root > id", id="id-float"),
    pytest.param("order", {"id": None}, "root > id", id="id-null"),
    pytest.param("order", {"currency": "XYZ"}, "root > currency", id="currency-unknown"),
    pytest.param("order", {"currency": "EURO"}, "root > currency", id="currency-4-letters"),
    pytest.param("order", {"currency": "\u017fek"}, "root > currency", id="currency-upper-ascii"),
    pytest.param("contact", {"country_id": "\u0131t"}, "root > country_id", id="country-upper-ascii"),
    pytest.param(
        "order",
        {"shipping_address": {"country_code": "ZZ"}},
        "root > shipping_address > country_code",
        id="address-country",
    ),
    pytest.param("contact", {"country_id": "XX"}, "root > country_id", id="country-unknown"),
    pytest.param("contact", {"country_id": "GBR"}, "root > country_id", id="country-alpha3"),
    pytest.param("contact", {"phone_number": "07812122136"}, "root > phone_number", id="phone-national"),
    pytest.param("contact", {"phone_number": "+44 7812 122136"}, "root > phone_number", id="phone-spaces"),
    pytest.param("order", {"timestamp": "2023-05-25"}, "root > timestamp", id="timestamp-date-only"),
    pytest.param("order", {"timestamp": "2023-05-25T15:32+1"}, "root > timestamp", id="timestamp-offset-1"),
    pytest.param("order", {"timestamp": "2023-02-30T10:00:00Z"}, "root > timestamp", id="timestamp-feb-30"),
    pytest.param("order", {"timestamp": "2023-05-25T25:00:00Z"}, "root > timestamp", id="timestamp-hour-25"),
    pytest.param(
        "contact", {"timestamp_subscribed": "x"}, "root > timestamp_subscribed", id="timestamp-word"
    ),
    pytest.param(
        "contact",
        {"channels": {"sms": {"allow_marketing": True, "dt_updated_marketing": "now"}}},
        "root > channels > sms > dt_updated_marketing",
        id="sms-timestamp",
    ),
    pytest.param("contact", {"date_of_birth": "1990-02-30"}, "root > date_of_birth", id="date-feb-30"),
    pytest.param("contact", {"date_of_birth": "01/02/1990"}, "root > date_of_birth", id="date-us-format"),
    pytest.param("contact", {"gender": "male"}, "root > gender", id="gender"),
    pytest.param("contact", {"marketing_optin": "YES"}, "root > marketing_optin", id="optin-word"),
    pytest.param("contact", {"marketing_optin": 1}, "root > marketing_optin", id="optin-number"),
    pytest.param("contact", {"email": "bob@"}, "root > email", id="email"),
    pytest.param("contact", {"@force_optin": "yes"}, "root > @force_optin", id="force-optin"),
    pytest.param("product", {"listings": [{"price": 1.0}]}, "root > listings > 0", id="listing-no-store"),
    pytest.param("product", {"price": "10.00"}, "root > price", id="price-string"),
    pytest.param("custom_event", {"identity_email": DROP}, "root > identity_email", id="event-no-identity"),
    pytest.param(
        "custom_event",
        {"identity_email": None, "identity_account_id": None, "profile_id": None},
        "root > identity_email",
        id="event-null-identities",
    ),
    pytest.param("custom_event", {"event_type": "e" * 33}, "root > event_type", id="event-type-33-chars"),
    pytest.param("contact", {"@collection": "uk/web"}, "root > @collection", id="collection-with-slash"),
    pytest.param("custom_event", {"event_type": DROP}, "root", id="event-no-type"),
    pytest.param(
        "order",
        {"id": "bad\n"},
        "root > id",
        id="id-trailing-newline",
    ),
    pytest.param(
        "contact",
        {"email": "bob@example.com\n"},
        "root > email",
        id="email-trailing-newline",
    ),
    pytest.param(
        "order",
        {"timestamp": "0001-01-01T00:00:00+01:00"},
        "root > timestamp",
        id="timestamp-before-year-1-in-utc",
    ),
    pytest.param(
        "product",
        {"listings": [{"store": "uk", "special_price_dt_to": "9999-12-31T23:00:00-01:00"}]},
        "root > listings > 0 > special_price_dt_to",
        id="timestamp-after-year-9999-in-utc",
    ),
    pytest.param(
        "order",
        {"timestamp": "2023-05-25T15:32:52+01:99"},
        "root > timestamp",
        id="timestamp-offset-minutes-99",
    ),
]


@pytest.mark.parametrize(("record_type", "changes", "path"), INVALID)
def test_an_invalid_record_is_rejected_with_its_path_and_its_neighbours_land(
    client: Client, tenant: Tenant, record_type: str, changes: dict[str, Any], path: str
) -> None:
    bad = {k: v for k, v in {**minimal(record_type, "bad"), **changes}.items() if v is not DROP}
    response = post(client, tenant, [minimal(record_type, "ok-1"), bad, minimal(record_type, "ok-2")])
    assert response.status_code == 202, response.text
    reply = response.json()
    assert (reply["accepted"], reply["rejected"]) == (2, 1)
    [error] = reply["errors"]
    bad_id = None if bad["id"] is None else str(bad["id"])
    assert (error["index"], error["id"], error["error_path"]) == (1, bad_id, path)
    assert error["error_message"]
    wait_applied(client, tenant, reply["request_id"])
    assert list(stored(client, tenant, record_type)) == ["ok-1", "ok-2"]
    [kept] = errors(client, tenant)
    assert kept["request_id"] == reply["request_id"]
    assert (kept["record_type"], kept["id"], kept["error_path"]) == (record_type, bad_id, path)
    assert kept["error_message"] == error["error_message"]


def test_numbers_are_accepted_as_ids_and_stored_as_strings(client: Client, tenant: Tenant) -> None:
    order = {
        "@type": "order",
        "id": 123,
        "customer": {"id": 42, "email": "a@example.com"},
        "lineitems": [{"product_id": 7, "variant_id": 8, "quantity": 1}],
    }
    push(client, tenant, [order])
    got = read(client, tenant, "/v2/orders/123")
    assert (got["id"], got["customer"]["id"]) == ("123", "42")
    assert (got["lineitems"][0]["product_id"], got["lineitems"][0]["variant_id"]) == ("7", "8")
    push(
        client,
        tenant,
        [{"@type": "product", "id": 99, "parent_id": 5, "attributes": [{"type": "c", "id": 3}]}],
    )
    product = read(client, tenant, "/v2/products/99")
    assert (product["id"], product["parent_id"], product["attributes"][0]["id"]) == ("99", "5", "3")
    push(client, tenant, [{"@type": "contact", "id": 1, "customer_id": 2}])
    assert read(client, tenant, "/v2/contacts/default/1")["customer_id"] == "2"
    push(client, tenant, [{"@type": "custom_event", "id": 5, "event_type": "t", "identity_account_id": 2}])
    assert stored(client, tenant, "custom_event")["5"]["identity_account_id"] == "2"
    huge = 2**63  # larger than any integer column: it must arrive as a string, and be applied
    event = {"@type": "custom_event", "id": 6, "event_type": "t", "profile_id": huge}
    status = wait_applied(client, tenant, push(client, tenant, [event])["request_id"])
    assert status["applied"] == 1
    assert stored(client, tenant, "custom_event")["6"]["profile_id"] == str(huge)


TIMESTAMPS = [
    ("2023-05-25T15:32:52Z", "2023-05-25T15:32:52+00:00"),
    ("2023-05-25T15:32:52+00:00", "2023-05-25T15:32:52+00:00"),
    ("2023-05-25T15:32:52+00", "2023-05-25T15:32:52+00:00"),
    ("2023-05-25T16:32:52+01:00", "2023-05-25T15:32:52+00:00"),
    ("2023-05-25T16:32:52+0100", "2023-05-25T15:32:52+00:00"),
    ("2023-05-25T10:02:52-05:30", "2023-05-25T15:32:52+00:00"),
    ("2023-05-26T00:30:00+01:00", "2023-05-25T23:30:00+00:00"),
    ("2023-05-25T15:32:52.5Z", "2023-05-25T15:32:52.500000+00:00"),
    ("2023-05-25 15:32:52+00", "2023-05-25T15:32:52+00:00"),
]


def test_timestamps_are_stored_in_utc(client: Client, tenant: Tenant) -> None:
    push(
        client, tenant, [minimal("order", f"t{i}", timestamp=sent) for i, (sent, _) in enumerate(TIMESTAMPS)]
    )
    orders = stored(client, tenant, "order")
    assert [orders[f"t{i}"]["timestamp"] for i in range(len(TIMESTAMPS))] == [utc for _, utc in TIMESTAMPS]


def test_nested_timestamps_are_stored_in_utc(client: Client, tenant: Tenant) -> None:
    sms = {"allow_marketing": True, "dt_updated_marketing": "2023-05-25T17:00:00+02:00"}
    push(
        client,
        tenant,
        [minimal("contact", "c1", timestamp_acquired="2018-04-19T09:00:00+01", channels={"sms": sms})],
    )
    contact = read(client, tenant, "/v2/contacts/default/c1")
    assert contact["timestamp_acquired"] == "2018-04-19T08:00:00+00:00"
    assert contact["channels"]["sms"]["dt_updated_marketing"] == "2023-05-25T15:00:00+00:00"
    listing = {"store": "uk", "special_price_dt_from": "2024-01-01T00:00:00-01:00"}
    push(
        client,
        tenant,
        [minimal("product", "p1", special_price_dt_to="2024-02-01T00:00:00Z", listings=[listing])],
    )
    product = read(client, tenant, "/v2/products/p1")
    assert product["special_price_dt_to"] == "2024-02-01T00:00:00+00:00"
    assert product["listings"][0]["special_price_dt_from"] == "2024-01-01T01:00:00+00:00"


def test_a_custom_event_without_timestamp_gets_the_time_received(client: Client, tenant: Tenant) -> None:
    before = datetime.now().astimezone()
    push(client, tenant, [minimal("custom_event", "e1")])
    stamped = datetime.fromisoformat(stored(client, tenant, "custom_event")["e1"]["timestamp"])
    assert stamped.utcoffset() == timedelta(0)
    assert before - timedelta(minutes=1) <= stamped <= datetime.now().astimezone() + timedelta(minutes=1)


def test_currencies_and_countries_are_stored_upper_case(client: Client, tenant: Tenant) -> None:
    order = minimal("order", "o1", currency="gbp", shipping_address={"country_code": "gb"})
    push(client, tenant, [order])
    got = read(client, tenant, "/v2/orders/o1")
    assert (got["currency"], got["shipping_address"]["country_code"]) == ("GBP", "GB")
    push(client, tenant, [minimal("contact", "c1", country_id="fr")])
    assert read(client, tenant, "/v2/contacts/default/c1")["country_id"] == "FR"


OPTINS = ["EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED", True, False]


def test_marketing_optin_is_accepted_as_string_or_boolean(client: Client, tenant: Tenant) -> None:
    reply = push(
        client, tenant, [minimal("contact", f"c{i}", marketing_optin=v) for i, v in enumerate(OPTINS)]
    )
    assert (reply["accepted"], reply["rejected"]) == (len(OPTINS), 0)
    contacts = stored(client, tenant, "contact")
    assert [contacts[f"c{i}"]["marketing_optin"] for i in range(len(OPTINS))] == OPTINS


def test_unknown_fields_are_warned_about_and_not_stored(client: Client, tenant: Tenant) -> None:
    order = minimal(
        "order",
        "o1",
        nickname="x",
        customer={"id": "c1", "nickname": "Bob"},
        lineitems=[ITEM, {**ITEM, "colour": "red"}],
        shipping_address={"city": "Leeds", "geo": [1, 2]},
        properties={"free": {"form": True}},
    )
    reply = push(client, tenant, [order])
    assert reply["accepted"] == 1
    assert {(w["index"], w["id"], w["path"], w["message"]) for w in reply["warnings"]} == {
        (0, "o1", "root > nickname", "unknown field; not stored"),
        (0, "o1", "root > customer > nickname", "unknown field; not stored"),
        (0, "o1", "root > lineitems > 1 > colour", "unknown field; not stored"),
        (0, "o1", "root > shipping_address > geo", "unknown field; not stored"),
    }
    assert len(reply["warnings"]) == 4
    assert read(client, tenant, "/v2/orders/o1") == minimal(
        "order",
        "o1",
        customer={"id": "c1"},
        lineitems=[ITEM, ITEM],
        shipping_address={"city": "Leeds"},
        properties={"free": {"form": True}},
    )
    contact = minimal("contact", "c1", channels={"sms": {"allow_marketing": True, "opt": 1}}, shoe_size=9)
    warned = push(client, tenant, [contact])["warnings"]
    assert sorted(w["path"] for w in warned) == ["root > channels > sms > opt", "root > shoe_size"]
    assert "shoe_size" not in read(client, tenant, "/v2/contacts/default/c1")


# /v2/push/_errors and /v2/push/{request_id} ------------------------------------------------------


def test_push_errors_list_rejections_newest_first(client: Client, make_tenant: Callable[..., Tenant]) -> None:
    shop, other = make_tenant("shop"), make_tenant("other")
    first = push(client, shop, [minimal("order", "e1", currency="XYZ"), minimal("order", "fine")])
    second = push(client, shop, [minimal("order", "e2", timestamp="soon"), minimal("order", "e3", id="e 3")])
    found = errors(client, shop)
    assert [(e["id"], e["request_id"]) for e in found] == [
        ("e 3", second["request_id"]),
        ("e2", second["request_id"]),
        ("e1", first["request_id"]),
    ]
    assert [e["error_path"] for e in found] == ["root > id", "root > timestamp", "root > currency"]
    for error in found:
        assert error["record_type"] == "order"
        assert error["error_message"]
        assert datetime.fromisoformat(error["timestamp"]).utcoffset() == timedelta(0)
    assert [e["id"] for e in errors(client, shop, "?limit=1&offset=1")] == ["e2"]
    assert [e["id"] for e in errors(client, shop, "?offset=2")] == ["e1"]
    assert errors(client, other) == []


def test_push_status_goes_from_queued_to_applied(isolated: App) -> None:
    client, tenant, store = isolated.client, isolated.tenant(), isolated.store
    edge_of(client.app).worker.stop()
    response = post(client, tenant, [minimal("order", "a"), minimal("order", "b", currency="X")])
    request_id = response.json()["request_id"]
    queued = read(client, tenant, f"/v2/push/{request_id}")
    assert (queued["request_id"], queued["status"], queued["record_type"]) == (request_id, "queued", "order")
    assert (queued["accepted"], queued["rejected"], queued["applied"]) == (1, 1, None)
    assert queued["timestamp_applied"] is None
    assert stored(client, tenant, "order") == {}
    apply_round(store, queue_kinds())
    applied = read(client, tenant, f"/v2/push/{request_id}")
    assert (applied["status"], applied["accepted"], applied["rejected"], applied["applied"]) == (
        "applied",
        1,
        1,
        1,
    )
    assert applied["timestamp_received"] == queued["timestamp_received"]
    received, done = (datetime.fromisoformat(applied[f"timestamp_{k}"]) for k in ("received", "applied"))
    assert done >= received
    assert list(stored(client, tenant, "order")) == ["a"]


def test_a_push_with_every_record_rejected_is_applied_at_once(isolated: App) -> None:
    client, tenant = isolated.client, isolated.tenant()
    edge_of(client.app).worker.stop()
    request_id = post(client, tenant, [minimal("order", "a", currency="X")]).json()["request_id"]
    status = read(client, tenant, f"/v2/push/{request_id}")
    assert (status["status"], status["accepted"], status["rejected"], status["applied"]) == (
        "applied",
        0,
        1,
        0,
    )


def test_an_unknown_push_request_is_a_404_problem(client: Client, make_tenant: Callable[..., Tenant]) -> None:
    shop, other = make_tenant("shop"), make_tenant("other")
    assert_problem(client.get(f"/v2/push/{uuid.uuid4()}", headers=shop.headers), 404, "request_id")
    request_id = push(client, other, [minimal("order", "a")])["request_id"]
    assert_problem(client.get(f"/v2/push/{request_id}", headers=shop.headers), 404, "request_id")


# backlog and rate limit -------------------------------------------------------------------------


def full_queue(app: App, tenant: Tenant, limit: int) -> list[httpx.Response]:
    """Stop the worker, set the account's queue limit, and push one order at a time until refused."""
    client, store = app.client, app.store
    store.write_blocking(lambda conn: accounts.set_limits(conn, tenant.hash, {}, queue_limit=limit))
    edge_of(client.app).worker.stop()
    responses: list[httpx.Response] = []
    while not responses or responses[-1].status_code == 202:
        assert len(responses) <= limit + 1, "the backlog never filled"
        responses.append(post(client, tenant, [minimal("order", f"o{len(responses)}")]))
    return responses


def test_a_full_backlog_gives_429_and_stores_nothing(isolated: App) -> None:
    client, tenant, store = isolated.client, isolated.tenant(), isolated.store
    responses = full_queue(isolated, tenant, limit=2)
    assert responses[0].headers["x-queuesize-limit"] == "2"
    assert responses[0].headers["x-queuesize-remaining"] == "1"
    refused = responses[-1]
    problem = assert_problem(refused, 429)
    assert "nothing was stored" in problem["detail"]
    assert refused.headers["x-queuesize-limit"] == "2"
    assert refused.headers["x-queuesize-remaining"] == "0"
    assert int(refused.headers["retry-after"]) > 0
    assert_problem(post(client, tenant, [minimal("order", "again")]), 429)
    apply_round(store, queue_kinds())  # what the stopped worker would have done
    accepted = [f"o{i}" for i, r in enumerate(responses) if r.status_code == 202]
    assert list(stored(client, tenant, "order")) == accepted
    assert errors(client, tenant) == []


def test_a_push_is_refused_once_nothing_remains(isolated: App) -> None:
    responses = full_queue(isolated, isolated.tenant(), limit=2)
    assert [r.headers["x-queuesize-remaining"] for r in responses[:2]] == ["1", "0"]
    assert [r.status_code for r in responses] == [202, 202, 429]


def test_over_the_push_rate_limit_is_a_429_and_stores_nothing(
    client: Client, make_tenant: Callable[..., Tenant]
) -> None:
    shop = make_tenant("shop", limits={"push": "2/minute", "data": "unlimited"})
    replies = [post(client, shop, [minimal("order", f"o{i}")]) for i in range(3)]
    assert [r.status_code for r in replies] == [202, 202, 429]
    problem = assert_problem(replies[2], 429)
    assert "2/minute" in problem["detail"] and "push" in problem["detail"]
    barrier(client, shop)
    assert list(stored(client, shop, "order")) == ["o0", "o1"]


def test_a_rejected_record_s_long_id_is_reported_cut_to_512_characters(
    client: Client, tenant: Tenant
) -> None:
    long_id = "has space " + "x" * 1000
    reply = post(client, tenant, [{"@type": "contact", "id": long_id}]).json()
    assert reply["errors"][0]["id"] == long_id[:512]
    assert errors(client, tenant)[0]["id"] == long_id[:512]
