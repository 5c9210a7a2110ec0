"""Dynamic segments through HTTP: each kind of condition against hand-computed membership, kept
current by the worker as pushes arrive (entries and exits in the changes feed), dry runs, changes of
rules, export to a static list, bad rules (400 naming the path), relative dates crossing their line,
isolation between accounts and GDPR anonymisation.

The module shares one app (server and worker); conftest's ``tenant`` is a fresh account on it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import Tenant, eventually, push, run_cli
from patron import segments
from support.app import App, Client, app_fixtures
from support.http import assert_problem, post, read

shared, client, make_tenant = app_fixtures()

NOW = datetime.now(UTC)


def ago(days: float) -> str:
    return (NOW - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def contact(contact_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "@type": "contact",
        "@collection": "default",
        "id": contact_id,
        "email": f"{contact_id}@example.com",
        **fields,
    }


def order(
    order_id: str,
    who: str,
    total: float,
    days_ago: float = 1,
    products: tuple[str, ...] = ("P1",),
    **fields: Any,
) -> dict[str, Any]:
    return {
        "@type": "order",
        "id": order_id,
        "timestamp": ago(days_ago),
        "currency": "GBP",
        "grand_total": total,
        "customer": {"email": f"{who}@example.com"},
        "lineitems": [{"product_id": p, "quantity": 1, "unit_price": total} for p in products],
        **fields,
    }


def event(event_id: str, who: str, event_type: str, days_ago: float = 1, **properties: Any) -> dict[str, Any]:
    return {
        "@type": "custom_event",
        "id": event_id,
        "event_type": event_type,
        "timestamp": ago(days_ago),
        "identity_email": f"{who}@example.com",
        "properties": properties,
    }


def product(product_id: str, *attributes: dict[str, str]) -> dict[str, Any]:
    return {
        "@type": "product",
        "id": product_id,
        "title": product_id,
        "price": 10,
        "attributes": list(attributes),
    }


def profile_ids(client: Client, tenant: Tenant) -> dict[str, str]:
    """Each person (the contact id before ``@``) by profile id's owner: person -> profile id."""
    found = read(client, tenant, "/v2/profiles?limit=250")
    return {doc["email"].split("@")[0]: doc["id"] for doc in found if doc.get("email")}


def create(client: Client, tenant: Tenant, rules: dict[str, Any], name: str = "s") -> dict[str, Any]:
    response = post(client, tenant, {"name": name, "rules": rules}, "/v2/segments")
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def ready(client: Client, tenant: Tenant, segment_id: str) -> dict[str, Any]:
    found: dict[str, Any] = eventually(
        lambda: (s := read(client, tenant, f"/v2/segments/{segment_id}"))["status"] == "ready" and s,
        "segment built",
    )
    return found


def members(client: Client, tenant: Tenant, segment_id: str) -> set[str]:
    """The members, as people (contact ids)."""
    people = {pid: person for person, pid in profile_ids(client, tenant).items()}
    ids = read(client, tenant, f"/v2/segments/{segment_id}/profiles?ids_only=true&limit=250")
    return {people[pid] for pid in ids}


def evaluated(client: Client, tenant: Tenant, rules: dict[str, Any]) -> set[str]:
    """Who a new segment of ``rules`` holds once built (and its size and dry run agree)."""
    segment = create(client, tenant, rules)
    done = ready(client, tenant, segment["id"])
    found = members(client, tenant, segment["id"])
    assert done["size"] == len(found)
    response = post(client, tenant, {"name": "dry", "rules": rules}, "/v2/segments?dry_run=true")
    assert response.status_code == 200 and response.json() == {"count": len(found)}, response.text
    return found


@pytest.fixture(scope="module")
def shop(shared: App) -> Tenant:
    """One account with a known population: ann, bob, cat, dan, eve."""
    tenant = shared.tenant()
    c = shared.client
    push(
        c,
        tenant,
        [
            contact(
                "ann",
                marketing_optin="EXPLICITLY_OPTEDIN",
                country_id="GB",
                properties={"tier": "gold", "age": 41},
                **{"@add_to_lists": ["vip"]},
            ),
            contact(
                "bob", marketing_optin="EXPLICITLY_OPTEDOUT", country_id="FR", properties={"tier": "silver"}
            ),
            contact("cat", country_id="GB", properties={"age": 30}),
            contact(
                "dan", marketing_optin="EXPLICITLY_OPTEDIN", country_id="DE", **{"@add_to_lists": ["vip"]}
            ),
            contact("eve", country_id="US"),
        ],
    )
    push(
        c,
        tenant,
        [
            product("P1", {"type": "brand", "id": "acme"}, {"type": "category", "id": "shoes"}),
            product("P2", {"type": "brand", "id": "zeta"}),
            product("P3", {"type": "brand", "id": "acme"}),
        ],
    )
    push(
        c,
        tenant,
        [
            order("o1", "ann", 100.0, days_ago=200, products=("P1", "P2")),
            order("o2", "ann", 50.0, days_ago=5, products=("P3",)),
            order("o3", "bob", 300.0, days_ago=120, products=("P2",)),
            order("o4", "cat", 20.0, days_ago=10, products=("P1",)),
            order("o5", "cat", 25.0, days_ago=400, products=("P1",), status="cancelled"),
        ],
    )
    push(
        c,
        tenant,
        [
            event("e1", "ann", "wishlist_add", days_ago=2, colour="red"),
            event("e2", "ann", "wishlist_add", days_ago=40, colour="blue"),
            event("e3", "bob", "wishlist_add", days_ago=3, colour="red"),
            event("e4", "eve", "review", days_ago=1, stars=5),
        ],
    )
    return tenant


CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("orders at least 2", {"field": "stats.orders", "op": "gte", "value": 2}, {"ann"}),
    ("revenue over 100", {"field": "stats.revenue", "op": "gt", "value": 100}, {"ann", "bob"}),
    ("country in", {"field": "country_id", "op": "in", "value": ["GB", "DE"]}, {"ann", "cat", "dan"}),
    ("property text", {"field": "properties.tier", "op": "eq", "value": "gold"}, {"ann"}),
    ("property number", {"field": "properties.age", "op": "lt", "value": 35}, {"cat"}),
    ("property exists", {"field": "properties.tier", "op": "exists"}, {"ann", "bob"}),
    ("property missing", {"field": "properties.tier", "op": "missing"}, {"cat", "dan", "eve"}),
    ("email subscribed", {"consent": "email", "is": "subscribed"}, {"ann", "dan"}),
    ("email unsubscribed", {"consent": "email", "is": "unsubscribed"}, {"bob"}),
    ("email unknown", {"consent": "email", "is": "unknown"}, {"cat", "eve"}),
    ("list", {"list": "vip"}, {"ann", "dan"}),
    ("not in list", {"not": {"list": "vip"}}, {"bob", "cat", "eve"}),
    ("last purchase over 90 days ago", {"date": "dates.last_purchase", "before": "-90d"}, {"bob"}),
    ("last purchase within 30 days", {"date": "dates.last_purchase", "after": "-30d"}, {"ann", "cat"}),
    ("absolute date", {"date": "dates.first_purchase", "after": ago(150)[:10]}, {"cat", "bob"}),
    ("orders in a window", {"orders": "count", "op": "gte", "value": 1, "since": "-30d"}, {"ann", "cat"}),
    ("revenue in a window", {"orders": "revenue", "op": "gte", "value": 100, "since": "-150d"}, {"bob"}),
    ("bought a product", {"orders": "count", "product": "P2"}, {"ann", "bob"}),
    ("bought a brand", {"orders": "count", "attribute": {"type": "brand", "id": "acme"}}, {"ann", "cat"}),
    (
        "bought a category twice",
        {"orders": "count", "op": "gte", "value": 2, "attribute": {"type": "category", "id": "shoes"}},
        set(),  # cat's second order of P1 is cancelled
    ),
    (
        "revenue of a brand in a window",
        {
            "orders": "revenue",
            "op": "gte",
            "value": 40,
            "since": "-30d",
            "attribute": {"type": "brand", "id": "acme"},
        },
        {"ann"},
    ),
    ("never ordered", {"orders": "count", "op": "lt", "value": 1}, {"dan", "eve"}),
    # a count against each comparison, whole and not (ann has 2 orders, bob and cat 1, dan and eve 0)
    ("orders exactly 1", {"orders": "count", "op": "eq", "value": 1}, {"bob", "cat"}),
    ("orders other than 1", {"orders": "count", "op": "ne", "value": 1}, {"ann", "dan", "eve"}),
    ("orders exactly 1.5", {"orders": "count", "op": "eq", "value": 1.5}, set()),
    (
        "orders other than 1.5",
        {"orders": "count", "op": "ne", "value": 1.5},
        {"ann", "bob", "cat", "dan", "eve"},
    ),
    ("orders more than 1.5", {"orders": "count", "op": "gt", "value": 1.5}, {"ann"}),
    ("orders more than 1", {"orders": "count", "op": "gt", "value": 1}, {"ann"}),
    ("orders at most 1", {"orders": "count", "op": "lte", "value": 1}, {"bob", "cat", "dan", "eve"}),
    ("orders at most 0.5", {"orders": "count", "op": "lte", "value": 0.5}, {"dan", "eve"}),
    ("orders fewer than 1.5", {"orders": "count", "op": "lt", "value": 1.5}, {"bob", "cat", "dan", "eve"}),
    ("orders at least 0", {"orders": "count", "op": "gte", "value": 0}, {"ann", "bob", "cat", "dan", "eve"}),
    ("orders at least 1.5", {"orders": "count", "op": "gte", "value": 1.5}, {"ann"}),
    ("event type", {"event": "wishlist_add"}, {"ann", "bob"}),
    ("event count", {"event": "wishlist_add", "op": "gte", "value": 2}, {"ann"}),
    ("event count exactly", {"event": "wishlist_add", "op": "eq", "value": 2}, {"ann"}),
    ("event count under", {"event": "wishlist_add", "op": "lt", "value": 2}, {"bob", "cat", "dan", "eve"}),
    ("event count over", {"event": "wishlist_add", "op": "gt", "value": 0.5}, {"ann", "bob"}),
    (
        "event in a window",
        {"event": "wishlist_add", "since": "-10d", "property": {"name": "colour", "value": "red"}},
        {"ann", "bob"},
    ),
    ("event property", {"event": "wishlist_add", "property": {"name": "colour", "value": "blue"}}, {"ann"}),
    ("event number property", {"event": "review", "property": {"name": "stars", "value": 5}}, {"eve"}),
    (
        "all of",
        {"all": [{"consent": "email", "is": "subscribed"}, {"not": {"list": "vip"}}]},
        set(),
    ),
    (
        "any of",
        {
            "any": [
                {"field": "country_id", "op": "eq", "value": "US"},
                {"event": "wishlist_add", "op": "gte", "value": 2},
            ]
        },
        {"ann", "eve"},
    ),
    (
        "five conditions",
        {
            "all": [
                {"field": "stats.orders", "op": "gte", "value": 1},
                {
                    "any": [
                        {"consent": "email", "is": "subscribed"},
                        {"field": "country_id", "op": "eq", "value": "GB"},
                    ]
                },
                {"not": {"date": "dates.last_purchase", "before": "-90d"}},
                {"orders": "count", "product": "P1"},
            ]
        },
        {"ann", "cat"},
    ),
]


@pytest.mark.parametrize(("rules", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_condition_holds_who_it_says(
    client: Client, shop: Tenant, rules: dict[str, Any], expected: set[str]
) -> None:
    assert evaluated(client, shop, rules) == expected


def test_the_worker_keeps_a_segment_current_and_records_entries_and_exits(
    client: Client, tenant: Tenant
) -> None:
    push(client, tenant, [contact("ann"), contact("bob")])
    segment = create(client, tenant, {"field": "stats.orders", "op": "gte", "value": 2})
    ready(client, tenant, segment["id"])
    assert members(client, tenant, segment["id"]) == set()
    push(client, tenant, [order("o1", "ann", 10.0), order("o2", "ann", 10.0), order("o3", "bob", 10.0)])
    assert members(client, tenant, segment["id"]) == {"ann"}
    push(client, tenant, [order("o4", "bob", 10.0), order("o1", "ann", 10.0, status="cancelled")])
    assert members(client, tenant, segment["id"]) == {"bob"}
    ids = profile_ids(client, tenant)
    changes = read(client, tenant, f"/v2/segments/{segment['id']}/changes?limit=250")
    assert [(c["type"], c["profile_id"]) for c in changes] == [
        ("segment_enter", ids["ann"]),
        ("segment_enter", ids["bob"]),
        ("segment_exit", ids["ann"]),
    ]
    assert all(c["segment_id"] == segment["id"] and c["timestamp"] for c in changes)
    assert read(client, tenant, f"/v2/segments/{segment['id']}")["size"] == 1
    docs = read(client, tenant, f"/v2/segments/{segment['id']}/profiles")
    assert [d["id"] for d in docs] == [ids["bob"]] and docs[0]["stats"]["orders"] == 2
    timeline = read(client, tenant, f"/v2/profiles/{ids['ann']}/activity?limit=50")
    moves = [(a["type"], a["id"]) for a in timeline if a["channel"] == "segment"]
    assert moves == [("segment_exit", segment["id"]), ("segment_enter", segment["id"])]


def test_a_custom_event_alone_moves_a_profile_in(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("ann")])
    segment = create(
        client, tenant, {"event": "wishlist_add", "property": {"name": "colour", "value": "red"}}
    )
    ready(client, tenant, segment["id"])
    push(client, tenant, [event("e1", "ann", "wishlist_add", colour="blue")])
    assert members(client, tenant, segment["id"]) == set()
    push(client, tenant, [event("e2", "ann", "wishlist_add", colour="red")])
    assert members(client, tenant, segment["id"]) == {"ann"}


def test_a_merge_takes_the_merged_profile_out(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("ann", country_id="GB"), contact("bob", country_id="GB")])
    segment = create(client, tenant, {"field": "country_id", "op": "eq", "value": "GB"})
    ready(client, tenant, segment["id"])
    ids = profile_ids(client, tenant)
    body = {"email": "ann@example.com", "profile_id": ids["ann"]}
    merge = {
        "survivor": {"type": "profile_hash", "value": ids["ann"]},
        "customers_to_merge": [{"type": "profile_hash", "value": ids["bob"]}],
    }
    response = post(client, tenant, merge, "/v2/merge-profile")
    assert response.status_code == 202, (response.text, body)
    held = eventually(
        lambda: (
            (found := read(client, tenant, f"/v2/segments/{segment['id']}/profiles?ids_only=true"))
            == [ids["ann"]]
            and found
        ),
        "the merged profile left",
    )
    assert held == [ids["ann"]]


def test_a_product_gaining_or_losing_an_attribute_moves_its_buyers(client: Client, tenant: Tenant) -> None:
    """Nobody's profile changes, yet the buyers of a product that gains (or loses) the attribute a
    segment asks for enter (or leave) it: the segment is built again; one asking for another
    attribute keeps its members."""
    acme = {"type": "brand", "id": "acme"}
    push(client, tenant, [contact("ann"), contact("bob")])
    push(client, tenant, [product("P1", acme), product("P2", {"type": "brand", "id": "zeta"})])
    push(
        client,
        tenant,
        [order("o1", "ann", 10.0, products=("P1",)), order("o2", "bob", 10.0, products=("P2",))],
    )
    segment = create(client, tenant, {"orders": "count", "attribute": acme})
    other = create(client, tenant, {"orders": "count", "attribute": {"type": "brand", "id": "zeta"}})
    ready(client, tenant, segment["id"])
    ready(client, tenant, other["id"])
    assert members(client, tenant, segment["id"]) == {"ann"}
    push(client, tenant, [product("P2", {"type": "brand", "id": "zeta"}, acme)])  # P2 is acme too
    done = ready(client, tenant, segment["id"])
    assert members(client, tenant, segment["id"]) == {"ann", "bob"} and done["size"] == 2
    push(client, tenant, [product("P1")])  # P1 is no longer acme
    done = ready(client, tenant, segment["id"])
    assert members(client, tenant, segment["id"]) == {"bob"} and done["size"] == 1
    ids = profile_ids(client, tenant)
    changes = read(client, tenant, f"/v2/segments/{segment['id']}/changes")
    assert [(c["type"], c["profile_id"]) for c in changes] == [
        ("segment_enter", ids["ann"]),
        ("segment_enter", ids["bob"]),
        ("segment_exit", ids["ann"]),
    ]
    assert members(client, tenant, other["id"]) == {"bob"}
    assert read(client, tenant, f"/v2/segments/{other['id']}")["status"] == "ready"


def test_changing_the_rules_builds_the_segment_again(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("ann", country_id="GB"), contact("bob", country_id="FR")])
    segment = create(client, tenant, {"field": "country_id", "op": "eq", "value": "GB"})
    ready(client, tenant, segment["id"])
    response = client.put(
        f"/v2/segments/{segment['id']}",
        json={"name": "french", "rules": {"field": "country_id", "op": "eq", "value": "FR"}},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "french"
    done = ready(client, tenant, segment["id"])
    assert members(client, tenant, segment["id"]) == {"bob"} and done["size"] == 1
    listed = read(client, tenant, "/v2/segments")
    assert [s["id"] for s in listed] == [segment["id"]]
    assert client.delete(f"/v2/segments/{segment['id']}", headers=tenant.headers).status_code == 204
    assert_problem(client.get(f"/v2/segments/{segment['id']}", headers=tenant.headers), 404, "segment_id")
    assert read(client, tenant, "/v2/segments") == []


def test_a_segment_exports_to_a_static_list(client: Client, tenant: Tenant) -> None:
    push(
        client,
        tenant,
        [contact("ann", country_id="GB"), contact("bob", country_id="FR"), contact("cat", country_id="GB")],
    )
    segment = create(client, tenant, {"field": "country_id", "op": "eq", "value": "GB"})
    ready(client, tenant, segment["id"])
    response = post(client, tenant, {"list_id": "gb"}, f"/v2/segments/{segment['id']}/export")
    assert response.status_code == 202, response.text
    assert response.json() == {"list_id": "gb", "members": 2}
    eventually(lambda: read(client, tenant, "/v2/lists/gb")["size"] == 2, "the members in the list")
    ids = profile_ids(client, tenant)
    assert [ref["id"] for ref in read(client, tenant, f"/v2/profiles/{ids['ann']}")["lists"]] == ["gb"]
    assert_problem(post(client, tenant, {"list_id": "x"}, "/v2/segments/999999/export"), 404, "segment_id")
    assert_problem(post(client, tenant, {"list": "x"}, f"/v2/segments/{segment['id']}/export"), 400)


def test_a_big_segment_exports_in_steps(client: Client, tenant: Tenant) -> None:
    """More members than one step adds: the worker adds them all, a step at a time."""
    from patron.profiles.segments.members import EXPORT_STEP

    n = 2 * EXPORT_STEP + 100
    people = [contact(f"p{i}", country_id="GB") for i in range(n)]
    for start in range(0, n, 100):
        push(client, tenant, people[start : start + 100], wait=start + 100 >= n)
    segment = create(client, tenant, {"field": "country_id", "op": "eq", "value": "GB"})
    assert ready(client, tenant, segment["id"])["size"] == n
    response = post(client, tenant, {"list_id": "all-gb"}, f"/v2/segments/{segment['id']}/export")
    assert response.status_code == 202 and response.json() == {"list_id": "all-gb", "members": n}
    eventually(lambda: read(client, tenant, "/v2/lists/all-gb")["size"] == n, "every member in the list", 120)
    for doc in read(client, tenant, "/v2/profiles?limit=250&offset=4000"):  # the last step's people
        assert [ref["id"] for ref in doc["lists"]] == ["all-gb"], doc


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        (
            {"all": [{"list": "a"}, {"list": "b"}, {"field": "stats.orders", "op": "bigger", "value": 1}]},
            "rules.all[2].op",
        ),
        ({"field": "stats.orders", "op": "gte", "value": "two"}, "rules.value"),
        ({"field": "password", "op": "eq", "value": "x"}, "rules.field"),
        ({"date": "dates.last_purchase", "before": "last year"}, "rules.before"),
        ({"any": [{"not": {"nothing": 1}}]}, "rules.any[0].not"),
        ({"any": []}, "rules.any"),
        ({"list": "a", "consent": "email"}, "rules"),
        ({"orders": "count", "value": -1}, "rules.value"),
        ({"event": "x" * 33}, "rules.event"),
        ({"orders": "count", "attribute": {"type": "brand"}}, "rules.attribute"),
        ({"orders": "count", "attribute": {"type": "brand", "id": "a b"}}, "rules.attribute.id"),
        (
            {"not": {"not": {"not": {"not": {"not": {"not": {"list": "a"}}}}}}},
            "rules.not.not.not.not.not.not",
        ),
        ({"any": [{"list": str(i)} for i in range(33)]}, "rules.any"),
        (
            {
                "all": [
                    {"any": [{"list": str(i)} for i in range(20)]},
                    {"any": [{"list": str(i)} for i in range(20)]},
                ]
            },
            "rules.all[1].any[12]",
        ),
    ],
)
def test_bad_rules_are_refused_naming_the_path(
    client: Client, tenant: Tenant, rules: Any, field: str
) -> None:
    response = post(client, tenant, {"name": "bad", "rules": rules}, "/v2/segments")
    assert_problem(response, 400, field)
    assert read(client, tenant, "/v2/segments") == []


def test_a_bad_body_is_refused(client: Client, tenant: Tenant) -> None:
    assert_problem(post(client, tenant, {"rules": {"list": "a"}}, "/v2/segments"), 400)
    assert_problem(
        post(client, tenant, {"name": "x", "rules": {"list": "a"}, "extra": 1}, "/v2/segments"), 400
    )


def _check(shared: App, moment: datetime) -> None:
    """Run the relative segments' check as of ``moment`` (every segment of the module due then)."""
    while shared.store.write_blocking(lambda conn: segments.recheck(conn, moment, 3600)) == 10:
        pass  # ten at a time, the oldest checks first


def test_a_relative_segment_follows_time(client: Client, tenant: Tenant, shared: App) -> None:
    """Last purchase more than 90 days ago: ann, 80 days ago, crosses the line when 11 days pass; the
    check evaluates the profiles whose date crossed (an index range), the segment stays ready."""
    push(client, tenant, [contact("ann"), contact("bob"), contact("cat")])
    push(
        client,
        tenant,
        [order("o1", "ann", 10.0, days_ago=80), order("o2", "bob", 5.0, days_ago=120)],
    )
    push(client, tenant, [order("o3", "cat", 5.0, days_ago=10)])
    segment = create(client, tenant, {"date": "dates.last_purchase", "before": "-90d"})
    built = ready(client, tenant, segment["id"])
    assert members(client, tenant, segment["id"]) == {"bob"}
    # nothing is due before the interval has passed since the segment was built
    assert shared.store.write_blocking(lambda conn: segments.recheck(conn, datetime.now(UTC), 3600)) == 0
    later = datetime.now(UTC) + timedelta(days=11)
    _check(shared, later)
    checked = read(client, tenant, f"/v2/segments/{segment['id']}")
    assert checked["status"] == "ready" and checked["timestamp_checked"] != built["timestamp_checked"]
    eventually(lambda: members(client, tenant, segment["id"]) == {"ann", "bob"}, "ann crossed the line")
    assert read(client, tenant, f"/v2/segments/{segment['id']}")["size"] == 2
    changes = read(client, tenant, f"/v2/segments/{segment['id']}/changes")
    assert [(c["type"], c["profile_id"]) for c in changes] == [
        ("segment_enter", profile_ids(client, tenant)[person]) for person in ("bob", "ann")
    ]


def test_the_check_reads_who_crossed_from_the_indexes(client: Client, tenant: Tenant, shared: App) -> None:
    """Through the Python API: the profiles a check evaluates are those with a date or an order in the
    span a relative moment moved through, nobody else; a condition no index serves asks for a full
    evaluation (None)."""
    from sqlalchemy import select

    from patron.profiles.segments import evaluate
    from patron.profiles.segments import rules as r
    from patron.store.schema import accounts

    push(client, tenant, [contact("ann"), contact("bob"), contact("cat")])
    push(client, tenant, [order("o1", "ann", 10.0, days_ago=80), order("o2", "bob", 5.0, days_ago=120)])
    push(client, tenant, [order("o3", "cat", 5.0, days_ago=27)])
    eventually(
        lambda: (
            len(profile_ids(client, tenant)) == 3
            and all(p["stats"]["orders"] == 1 for p in read(client, tenant, "/v2/profiles?limit=10"))
        ),
        "profiles built",
    )
    ids = profile_ids(client, tenant)
    account_id = shared.store.read_blocking(
        lambda conn: conn.execute(select(accounts.c.id).where(accounts.c.hash == tenant.hash)).scalar_one()
    )
    now = datetime.now(UTC)

    def crossed(rule: dict[str, Any], days: float) -> set[str] | None:
        parsed = r.parse(rule)
        later = now + timedelta(days=days)
        return shared.store.read_blocking(
            lambda conn: evaluate.crossed(conn, account_id, parsed, now, later, 100)
        )

    last_purchase = {"date": "dates.last_purchase", "before": "-90d"}
    assert crossed(last_purchase, 11) == {ids["ann"]}
    assert crossed(last_purchase, 1) == set()
    assert crossed(last_purchase, 45) == {ids["ann"]}  # bob's date is already past the line
    window = {"orders": "count", "op": "gte", "value": 1, "since": "-30d"}
    assert crossed(window, 5) == {ids["cat"]}
    assert crossed({"all": [last_purchase, {"not": window}]}, 11) == {ids["ann"], ids["cat"]}
    assert crossed({"field": "country_id", "op": "eq", "value": "GB"}, 11) == set()
    assert crossed({"event": "wishlist", "since": "-7d"}, 1) is None


def test_a_window_of_orders_and_of_events_follows_time(client: Client, tenant: Tenant, shared: App) -> None:
    """An order in the last 30 days (an index says who crossed) or a custom event in the last 7 (no
    index: the segment is built again in full): both are right after the check."""
    push(client, tenant, [contact("ann"), contact("bob")])
    push(client, tenant, [order("o1", "ann", 10.0, days_ago=25), order("o2", "bob", 10.0, days_ago=2)])
    push(
        client,
        tenant,
        [event("e1", "ann", "wishlist", days_ago=5), event("e2", "bob", "wishlist", days_ago=0.2)],
    )
    orders = create(client, tenant, {"orders": "count", "since": "-30d"}, name="orders")
    events = create(client, tenant, {"event": "wishlist", "since": "-7d"}, name="events")
    for segment in (orders, events):
        ready(client, tenant, segment["id"])
        assert members(client, tenant, segment["id"]) == {"ann", "bob"}
    later = datetime.now(UTC) + timedelta(days=6)
    _check(shared, later)
    stamp = later.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    for segment in (orders, events):
        eventually(
            lambda s=segment: (
                (found := read(client, tenant, f"/v2/segments/{s['id']}"))["status"] == "ready"
                and found["timestamp_checked"] == stamp
                and members(client, tenant, s["id"]) == {"bob"}
            ),
            "ann left the segment",
        )
        changes = read(client, tenant, f"/v2/segments/{segment['id']}/changes")
        assert [c["type"] for c in changes] == ["segment_enter", "segment_enter", "segment_exit"]


def test_accounts_see_only_their_own_segments(client: Client, tenant: Tenant, make_tenant: Any) -> None:
    other = make_tenant()
    push(client, tenant, [contact("ann", country_id="GB")])
    push(client, other, [contact("bob", country_id="GB")])
    mine = create(client, tenant, {"field": "country_id", "op": "eq", "value": "GB"})
    ready(client, tenant, mine["id"])
    assert members(client, tenant, mine["id"]) == {"ann"}
    for path in ("", "/profiles", "/changes"):
        assert_problem(
            client.get(f"/v2/segments/{mine['id']}{path}", headers=other.headers), 404, "segment_id"
        )
    assert_problem(client.delete(f"/v2/segments/{mine['id']}", headers=other.headers), 404, "segment_id")
    assert read(client, other, "/v2/segments") == []
    theirs = create(client, other, {"field": "country_id", "op": "eq", "value": "GB"})
    ready(client, other, theirs["id"])
    assert members(client, other, theirs["id"]) == {"bob"}


def test_anonymising_a_person_takes_them_out_without_a_trace(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("ann", country_id="GB"), contact("bob", country_id="GB")])
    segment = create(client, tenant, {"field": "country_id", "op": "eq", "value": "GB"})
    ready(client, tenant, segment["id"])
    ids = profile_ids(client, tenant)
    response = post(client, tenant, {"email": "ann@example.com"}, "/v2/data-deletion-requests")
    assert response.status_code in (200, 201, 202), response.text
    eventually(
        lambda: read(client, tenant, f"/v2/segments/{segment['id']}")["size"] == 1, "the person anonymised"
    )
    assert read(client, tenant, f"/v2/segments/{segment['id']}/profiles?ids_only=true") == [ids["bob"]]
    changes = read(client, tenant, f"/v2/segments/{segment['id']}/changes")
    assert [c["profile_id"] for c in changes] == [ids["bob"]]


def test_the_cli_creates_counts_shows_lists_and_deletes_segments(
    client: Client, tenant: Tenant, shared: App
) -> None:
    push(client, tenant, [contact("ann", country_id="GB"), contact("bob", country_id="FR")])
    rules = json.dumps({"field": "country_id", "op": "eq", "value": "GB"})

    def cli(*args: str) -> Any:
        done = run_cli(
            shared.data_dir,
            "segments",
            *args,
            "--account",
            tenant.hash,
            "--json",
            environment=shared.environment,
        )
        return json.loads(done.stdout)

    assert cli("count", "--rules", rules) == {"count": 1}
    created = cli("create", "--name", "british", "--rules", rules)
    assert created["name"] == "british" and created["rules"] == json.loads(rules)
    done = ready(client, tenant, created["id"])
    assert done["size"] == 1 and members(client, tenant, created["id"]) == {"ann"}
    assert cli("show", created["id"])["size"] == 1
    assert [s["id"] for s in cli("list")] == [created["id"]]
    bad = run_cli(
        shared.data_dir,
        "segments",
        "count",
        "--account",
        tenant.hash,
        "--rules",
        '{"list": 1}',
        environment=shared.environment,
        check=False,
    )
    assert bad.returncode != 0 and "rules.list" in bad.stderr
    deleted = run_cli(
        shared.data_dir,
        "segments",
        "delete",
        created["id"],
        "--account",
        tenant.hash,
        environment=shared.environment,
    )
    assert deleted.returncode == 0
    assert cli("list") == []
