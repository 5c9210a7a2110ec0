"""Ometria's merge rules as a pure function: ``merge(stored, incoming)``, the stored document after a
pushed record is applied to it (docs/compatibility.md, "Merging and idempotence"). A present field
replaces the stored value; JSON ``null`` deletes it; the string ``"null"`` is a string; ``properties``
merge key by key (a ``null`` property deletes that key); other objects and arrays replace whole;
``"@merge": false`` replaces the whole stored document; directives are not stored.

A unit test: no app, no store (``test_push`` checks the same rules through HTTP).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from patron.model.documents import merge

pytestmark = pytest.mark.unit

ORDER = {
    "@type": "order",
    "id": "o1",
    "status": "new",
    "channel": "web",
    "customer": {"id": "c1", "email": "ann@example.com"},
    "lineitems": [{"product_id": "p1", "quantity": 1}, {"product_id": "p2", "quantity": 2}],
    "properties": {"a": 1, "b": 2, "c": {"x": 1}, "d": [1, 2]},
}
CONTACT = {
    "@type": "contact",
    "@collection": "default",
    "id": "c1",
    "email": "ann@example.com",
    "firstname": "Ann",
    "lastname": "Lee",
    "channels": {"sms": {"allow_marketing": True, "allow_transactional": True}},
    "store_ids": ["a", "b"],
}
PRODUCT = {
    "@type": "product",
    "id": "p1",
    "title": "Shoe",
    "listings": [{"store": "uk", "price": 5.0}, {"store": "us", "price": 6.0}],
    "attributes": [{"type": "colour", "id": "red"}],
}


def order(**fields: Any) -> dict[str, Any]:
    """The pushed order record: its key and ``fields``."""
    return {"@type": "order", "id": "o1", **fields}


def without(doc: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in names}


#: (stored, incoming, the document stored after)
CASES = [
    # a new record
    pytest.param(None, order(status="new"), order(status="new"), id="new-record-stored-as-sent"),
    pytest.param(
        None, order(status="new", channel=None), order(status="new"), id="new-record-null-not-stored"
    ),
    pytest.param(
        None,
        order(properties={"a": None, "b": 1}),
        order(properties={"b": 1}),
        id="new-record-null-property-not-stored",
    ),
    # fields
    pytest.param(ORDER, order(status="shipped"), {**ORDER, "status": "shipped"}, id="a-field-replaces"),
    pytest.param(ORDER, order(), ORDER, id="key-alone-changes-nothing"),
    pytest.param(ORDER, order(coupon_code="X1"), {**ORDER, "coupon_code": "X1"}, id="a-new-field-is-added"),
    pytest.param(ORDER, order(channel=None), without(ORDER, "channel"), id="null-deletes-a-field"),
    pytest.param(ORDER, order(web_id=None), ORDER, id="null-of-an-absent-field-changes-nothing"),
    pytest.param(ORDER, order(channel="null"), {**ORDER, "channel": "null"}, id="string-null-is-a-string"),
    pytest.param(ORDER, order(channel=""), {**ORDER, "channel": ""}, id="empty-string-is-kept"),
    pytest.param(ORDER, order(is_valid=False), {**ORDER, "is_valid": False}, id="false-is-a-value"),
    pytest.param(
        CONTACT,
        {"@type": "contact", "@collection": "default", "id": "c1", "firstname": None, "lastname": "null"},
        {**without(CONTACT, "firstname"), "lastname": "null"},
        id="contact-null-and-string-null",
    ),
    # objects other than properties replace whole
    pytest.param(
        ORDER,
        order(customer={"id": "c1"}),
        {**ORDER, "customer": {"id": "c1"}},
        id="customer-object-replaces-whole",
    ),
    pytest.param(
        CONTACT,
        {
            "@type": "contact",
            "@collection": "default",
            "id": "c1",
            "channels": {"sms": {"allow_marketing": False}},
        },
        {**CONTACT, "channels": {"sms": {"allow_marketing": False}}},
        id="channels-object-replaces-whole",
    ),
    # properties merge key by key
    pytest.param(
        ORDER,
        order(properties={"b": None, "e": "null", "f": 0}),
        {**ORDER, "properties": {"a": 1, "c": {"x": 1}, "d": [1, 2], "e": "null", "f": 0}},
        id="properties-null-deletes-a-key-others-added",
    ),
    pytest.param(
        ORDER,
        order(properties={"c": {"y": 2}, "d": [3]}),
        {**ORDER, "properties": {"a": 1, "b": 2, "c": {"y": 2}, "d": [3]}},
        id="properties-values-replace-whole-not-deeper",
    ),
    pytest.param(ORDER, order(properties={}), ORDER, id="properties-empty-changes-nothing"),
    pytest.param(
        without(ORDER, "properties"),
        order(properties={"a": 1, "z": None}),
        {**without(ORDER, "properties"), "properties": {"a": 1}},
        id="properties-first-time",
    ),
    pytest.param(
        ORDER, order(properties=None), without(ORDER, "properties"), id="properties-null-deletes-all"
    ),
    # arrays replace whole
    pytest.param(
        ORDER,
        order(lineitems=[{"product_id": "p1", "quantity": 3}]),
        {**ORDER, "lineitems": [{"product_id": "p1", "quantity": 3}]},
        id="lineitems-replace-whole",
    ),
    pytest.param(ORDER, order(lineitems=[]), {**ORDER, "lineitems": []}, id="empty-array-replaces"),
    pytest.param(
        PRODUCT,
        {"@type": "product", "id": "p1", "listings": [{"store": "fr"}]},
        {**PRODUCT, "listings": [{"store": "fr"}]},
        id="listings-replace-whole",
    ),
    pytest.param(
        PRODUCT,
        {"@type": "product", "id": "p1", "attributes": []},
        {**PRODUCT, "attributes": []},
        id="attributes-replace-whole",
    ),
    pytest.param(
        CONTACT,
        {"@type": "contact", "@collection": "default", "id": "c1", "store_ids": ["c"]},
        {**CONTACT, "store_ids": ["c"]},
        id="store-ids-replace-whole",
    ),
    # @merge
    pytest.param(
        ORDER,
        order(status="x", **{"@merge": False}),
        order(status="x"),
        id="merge-false-replaces-the-whole-document",
    ),
    pytest.param(
        ORDER,
        order(channel=None, properties={"a": None, "b": 3}, **{"@merge": False}),
        order(properties={"b": 3}),
        id="merge-false-nulls-not-stored",
    ),
    pytest.param(
        None, order(status="x", **{"@merge": False}), order(status="x"), id="merge-false-new-record"
    ),
    pytest.param(
        ORDER,
        order(status="x", **{"@merge": True}),
        {**ORDER, "status": "x"},
        id="merge-true-merges",
    ),
    # directives are not stored
    pytest.param(
        CONTACT,
        {
            "@type": "contact",
            "@collection": "default",
            "id": "c1",
            "firstname": "Bo",
            "@add_to_lists": ["l1"],
            "@remove_from_lists": ["l2"],
            "@force_optin": True,
            "@profile_id": "0000-000000-000000",
            "@merge": True,
        },
        {**CONTACT, "firstname": "Bo"},
        id="directives-not-stored",
    ),
    pytest.param(
        None,
        {"@type": "contact", "@collection": "uk", "id": "c9", "@add_to_lists": ["l1"]},
        {"@type": "contact", "@collection": "uk", "id": "c9"},
        id="directives-not-stored-collection-is",
    ),
]


@pytest.mark.parametrize(("stored", "incoming", "expected"), CASES)
def test_merge(stored: dict[str, Any] | None, incoming: dict[str, Any], expected: dict[str, Any]) -> None:
    assert merge(stored, incoming) == expected


@pytest.mark.parametrize(("stored", "incoming", "expected"), CASES)
def test_applying_the_same_record_again_changes_nothing(
    stored: dict[str, Any] | None, incoming: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert merge(merge(stored, incoming), incoming) == expected


@pytest.mark.parametrize(("stored", "incoming", "expected"), CASES)
def test_merge_changes_neither_argument(
    stored: dict[str, Any] | None, incoming: dict[str, Any], expected: dict[str, Any]
) -> None:
    """The worker keeps the stored document as the step's ``before``: merging must not change it."""
    stored_before, incoming_before = copy.deepcopy(stored), copy.deepcopy(incoming)
    merged = merge(stored, incoming)
    assert (stored, incoming) == (stored_before, incoming_before)
    assert merged is not stored and merged is not incoming
