"""Lists (Ometria's segments) through HTTP: ``@add_to_lists`` / ``@remove_from_lists`` on pushed
contacts, ``GET /v2/lists`` (modes), ``GET /v2/lists/{id}``, ``GET /v2/lists/{id}/changes``, a
profile's ``lists``, list sizes and order totals, the ``POST`` / ``PUT`` extensions, and isolation
between accounts.

The module shares one app (server and worker); conftest's ``tenant`` is a fresh account on it.
"""

from __future__ import annotations

import re
from typing import Any

from conftest import Tenant, push
from support.app import Client, app_fixtures
from support.http import assert_problem, post, read

shared, client, make_tenant = app_fixtures()

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
STAMPS = ("timestamp_created", "timestamp_last_refreshed", "timestamp_stats_updated")
NOT_FOUND = "List with specified ID was not found"


# helpers ----------------------------------------------------------------------------------------


def contact(
    contact_id: str,
    email: str,
    collection: str = "default",
    *,
    add: list[Any] | None = None,
    remove: list[Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A contact, with ``@add_to_lists`` / ``@remove_from_lists`` when ``add`` / ``remove`` are given."""
    doc = {"@type": "contact", "@collection": collection, "id": contact_id, "email": email, **fields}
    if add is not None:
        doc["@add_to_lists"] = add
    if remove is not None:
        doc["@remove_from_lists"] = remove
    return doc


def order(order_id: str, customer: dict[str, str], grand_total: float, **fields: Any) -> dict[str, Any]:
    return {
        "@type": "order",
        "id": order_id,
        "timestamp": "2024-01-02T10:00:00+00:00",
        "currency": "GBP",
        "grand_total": grand_total,
        "customer": customer,
        **fields,
    }


def all_lists(client: Client, tenant: Tenant, mode: str | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = read(
        client, tenant, "/v2/lists" if mode is None else f"/v2/lists?mode={mode}"
    )
    return found


def one_list(client: Client, tenant: Tenant, list_id: str) -> dict[str, Any]:
    found: dict[str, Any] = read(client, tenant, f"/v2/lists/{list_id}")
    return found


def size(client: Client, tenant: Tenant, list_id: str) -> int:
    return int(one_list(client, tenant, list_id)["size"])


def profile(client: Client, tenant: Tenant, email: str) -> dict[str, Any]:
    """The one profile with this email, read by its id."""
    found = read(client, tenant, f"/v2/profiles?email={email}")
    assert isinstance(found, list) and len(found) == 1, found
    doc: dict[str, Any] = read(client, tenant, f"/v2/profiles/{found[0]['id']}")
    return doc


def changes(client: Client, tenant: Tenant, list_id: str, since: str | None = None) -> list[dict[str, Any]]:
    params = {} if since is None else {"since": since}
    response = client.get(f"/v2/lists/{list_id}/changes", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def events(found: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Changes as (type, list_id, profile_id)."""
    return [(c["type"], c["list_id"], c["profile_id"]) for c in found]


def create(client: Client, tenant: Tenant, body: Any) -> Any:
    return post(client, tenant, body, "/v2/lists")


def put(client: Client, tenant: Tenant, list_id: str, body: Any) -> Any:
    return client.put(f"/v2/lists/{list_id}", json=body, headers=tenant.headers)


def without_stamps(doc: dict[str, Any]) -> dict[str, Any]:
    """The list object with its timestamps checked for shape and left out."""
    for name in STAMPS:
        assert TIMESTAMP.match(doc[name]), (name, doc[name])
    return {k: v for k, v in doc.items() if k not in STAMPS}


def static(list_id: str, size: int = 0, title: str | None = None, **fields: Any) -> dict[str, Any]:
    """A list object as ``GET /v2/lists`` shows it, timestamps aside."""
    return {
        "@type": "list",
        "id": list_id,
        "title": title,
        "description": None,
        "size": size,
        "status": "READY",
        "type": "STATIC",
        "archived": False,
        "total_orders": 0,
        "total_revenue": 0,
        **fields,
    }


# filling lists by push --------------------------------------------------------------------------


def test_add_to_lists_creates_an_untitled_static_list(client: Client, tenant: Tenant) -> None:
    assert all_lists(client, tenant) == []
    push(client, tenant, [contact("c1", "ann@example.com", add=[8400])])
    found = all_lists(client, tenant)
    assert [without_stamps(doc) for doc in found] == [static("8400", size=1)]
    assert set(found[0]) == set(static("8400")) | set(STAMPS)


def test_list_ids_as_ints_or_strings_name_one_list(client: Client, tenant: Tenant) -> None:
    push(
        client,
        tenant,
        [
            contact("c1", "ann@example.com", add=[8400]),
            contact("c2", "bob@example.com", add=["8400"]),
        ],
    )
    assert [(doc["id"], doc["size"]) for doc in all_lists(client, tenant)] == [("8400", 2)]


def test_profile_shows_its_lists(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", "ann@example.com", add=[8400])])
    assert profile(client, tenant, "ann@example.com")["lists"] == [
        {"id": "8400", "title": None, "type": "STATIC"}
    ]


def test_profile_lists_show_a_posted_lists_title(client: Client, tenant: Tenant) -> None:
    assert create(client, tenant, {"id": "vip", "title": "VIP"}).status_code == 201
    push(client, tenant, [contact("c1", "ann@example.com", add=["vip"])])
    assert profile(client, tenant, "ann@example.com")["lists"] == [
        {"id": "vip", "title": "VIP", "type": "STATIC"}
    ]


def test_remove_from_lists_takes_the_profile_out(client: Client, tenant: Tenant) -> None:
    push(
        client,
        tenant,
        [
            contact("c1", "ann@example.com", add=[8400, 8401]),
            contact("c2", "bob@example.com", add=[8400]),
        ],
    )
    assert size(client, tenant, "8400") == 2
    push(client, tenant, [contact("c1", "ann@example.com", remove=[8400])])
    assert size(client, tenant, "8400") == 1
    assert size(client, tenant, "8401") == 1
    assert profile(client, tenant, "ann@example.com")["lists"] == [
        {"id": "8401", "title": None, "type": "STATIC"}
    ]
    assert profile(client, tenant, "bob@example.com")["lists"] == [
        {"id": "8400", "title": None, "type": "STATIC"}
    ]


def test_adding_twice_counts_once(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", "ann@example.com", add=[8400])])
    push(client, tenant, [contact("c1", "ann@example.com", add=[8400, "8400"])])
    assert size(client, tenant, "8400") == 1
    ann = profile(client, tenant, "ann@example.com")["id"]
    assert events(changes(client, tenant, "8400")) == [("list_enter", "8400", ann)]


def test_removing_a_non_member_changes_nothing(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", "ann@example.com", add=[8400])])
    push(client, tenant, [contact("c2", "bob@example.com", remove=[8400])])
    assert size(client, tenant, "8400") == 1
    ann = profile(client, tenant, "ann@example.com")["id"]
    assert events(changes(client, tenant, "8400")) == [("list_enter", "8400", ann)]
    assert profile(client, tenant, "bob@example.com")["lists"] == []


def test_two_contacts_of_one_person_count_once(client: Client, tenant: Tenant) -> None:
    push(
        client,
        tenant,
        [
            contact("d1", "ann@example.com", "default", add=[8400]),
            contact("s1", "ann@example.com", "subscribers", add=[8400]),
        ],
    )
    assert size(client, tenant, "8400") == 1
    assert len(changes(client, tenant, "8400")) == 1


# totals -----------------------------------------------------------------------------------------


def test_totals_sum_the_members_valid_orders(client: Client, tenant: Tenant) -> None:
    push(
        client,
        tenant,
        [
            contact("c1", "ann@example.com", customer_id="cust-ann", add=[8400]),
            contact("c2", "bob@example.com", add=[8400]),
            contact("c3", "cat@example.com"),  # not a member: her order is not counted
        ],
    )
    push(
        client,
        tenant,
        [
            order("o1", {"email": "ann@example.com"}, 100),
            order("o2", {"id": "cust-ann"}, 999, totals={"base": {"grand_total": 50}}),
            order("o3", {"email": "ann@example.com"}, 1000, is_valid=False),
            order("o4", {"email": "ann@example.com"}, 500, status="cancelled"),
            order("o5", {"email": "bob@example.com"}, 25.5),
            order("o6", {"email": "cat@example.com"}, 7),
        ],
    )
    found = one_list(client, tenant, "8400")
    assert (found["size"], found["total_orders"], found["total_revenue"]) == (2, 3, 175.5)


def test_totals_of_an_empty_list_are_zero(client: Client, tenant: Tenant) -> None:
    created = create(client, tenant, {"id": "empty", "title": "Empty"}).json()
    assert (created["size"], created["total_orders"], created["total_revenue"]) == (0, 0, 0)


# POST /v2/lists ---------------------------------------------------------------------------------


def test_post_creates_a_list_with_a_numeric_id(client: Client, tenant: Tenant) -> None:
    response = create(client, tenant, {"title": "VIP", "description": "Best customers"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert re.fullmatch(r"\d+", created["id"]), created
    assert without_stamps(created) == static(created["id"], title="VIP", description="Best customers")
    assert one_list(client, tenant, created["id"]) == created
    assert all_lists(client, tenant) == [created]


def test_post_generates_distinct_ids(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", "ann@example.com", add=[8400])])
    first = create(client, tenant, {"title": "One"}).json()["id"]
    second = create(client, tenant, {"title": "Two"}).json()["id"]
    assert len({"8400", first, second}) == 3
    assert all(re.fullmatch(r"\d+", i) for i in (first, second))


def test_post_uses_the_id_given(client: Client, tenant: Tenant) -> None:
    response = create(client, tenant, {"id": "vip", "title": "VIP"})
    assert response.status_code == 201, response.text
    assert without_stamps(response.json()) == static("vip", title="VIP")


def test_post_of_a_taken_id_is_a_conflict(client: Client, tenant: Tenant) -> None:
    assert create(client, tenant, {"id": "vip", "title": "VIP"}).status_code == 201
    assert_problem(create(client, tenant, {"id": "vip", "title": "Other"}), 409, "root > id")
    assert [doc["title"] for doc in all_lists(client, tenant)] == ["VIP"]


def test_post_of_an_id_a_push_created_is_a_conflict(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", "ann@example.com", add=[8400])])
    assert_problem(create(client, tenant, {"id": "8400", "title": "Taken"}), 409, "root > id")


def test_post_without_a_title_is_refused(client: Client, tenant: Tenant) -> None:
    problem = assert_problem(create(client, tenant, {"description": "no title"}), 400)
    assert "title" in problem["errors"][0]["field"] + problem["errors"][0]["detail"], problem
    assert all_lists(client, tenant) == []


def test_post_with_an_unknown_field_is_refused(client: Client, tenant: Tenant) -> None:
    problem = assert_problem(create(client, tenant, {"title": "VIP", "colour": "red"}), 400)
    assert "colour" in problem["detail"], problem
    assert all_lists(client, tenant) == []


def test_post_that_is_not_json_is_refused(client: Client, tenant: Tenant) -> None:
    headers = {**tenant.headers, "Content-Type": "application/x-www-form-urlencoded"}
    response = client.post("/v2/lists", content=b"title=VIP", headers=headers)
    assert_problem(response, 400, "body")
    assert all_lists(client, tenant) == []


# GET /v2/lists/{id} -----------------------------------------------------------------------------


def test_get_one_list(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", "ann@example.com", add=[8400, 8401])])
    found = one_list(client, tenant, "8401")
    assert without_stamps(found) == static("8401", size=1)
    assert found in all_lists(client, tenant)


def test_get_an_unknown_list_is_not_found(client: Client, tenant: Tenant) -> None:
    problem = assert_problem(client.get("/v2/lists/8400", headers=tenant.headers), 404)
    assert NOT_FOUND in problem["detail"]


# PUT /v2/lists/{id} and modes -------------------------------------------------------------------


def test_archived_lists_leave_the_active_mode(client: Client, tenant: Tenant) -> None:
    for list_id in ("a", "b"):
        assert create(client, tenant, {"id": list_id, "title": list_id.upper()}).status_code == 201
    response = put(client, tenant, "b", {"archived": True})
    assert response.status_code == 200, response.text
    assert response.json()["archived"] is True
    ids = {
        mode: [doc["id"] for doc in all_lists(client, tenant, mode)] for mode in ("active", "archived", "all")
    }
    assert ids == {"active": ["a"], "archived": ["b"], "all": ["a", "b"]}
    assert [doc["id"] for doc in all_lists(client, tenant)] == ["a"]
    assert one_list(client, tenant, "b")["archived"] is True


def test_unarchiving_brings_a_list_back(client: Client, tenant: Tenant) -> None:
    assert create(client, tenant, {"id": "a", "title": "A"}).status_code == 201
    assert put(client, tenant, "a", {"archived": True}).status_code == 200
    assert put(client, tenant, "a", {"archived": False}).status_code == 200
    assert [doc["id"] for doc in all_lists(client, tenant)] == ["a"]
    assert all_lists(client, tenant, "archived") == []


def test_put_renames_a_list(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", "ann@example.com", add=[8400])])
    response = put(client, tenant, "8400", {"title": "New"})
    assert response.status_code == 200, response.text
    assert without_stamps(response.json()) == static("8400", size=1, title="New")
    assert one_list(client, tenant, "8400")["title"] == "New"


def test_renaming_a_list_shows_in_its_members_profiles(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", "ann@example.com", add=[8400])])
    assert put(client, tenant, "8400", {"title": "New"}).status_code == 200
    assert profile(client, tenant, "ann@example.com")["lists"] == [
        {"id": "8400", "title": "New", "type": "STATIC"}
    ]


def test_put_of_an_unknown_list_is_not_found(client: Client, tenant: Tenant) -> None:
    problem = assert_problem(put(client, tenant, "8400", {"title": "New"}), 404)
    assert NOT_FOUND in problem["detail"]
    assert all_lists(client, tenant, "all") == []


def test_an_unknown_mode_is_refused(client: Client, tenant: Tenant) -> None:
    response = client.get("/v2/lists?mode=bogus", headers=tenant.headers)
    problem = assert_problem(response, 400)
    assert problem["errors"][0]["field"] == "mode", problem


# GET /v2/lists/{id}/changes ---------------------------------------------------------------------


def test_changes_are_listed_in_order(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", "ann@example.com", add=[8400])])
    push(client, tenant, [contact("c2", "bob@example.com", add=[8400])])
    push(client, tenant, [contact("c1", "ann@example.com", remove=[8400])])
    ann = profile(client, tenant, "ann@example.com")["id"]
    bob = profile(client, tenant, "bob@example.com")["id"]
    found = changes(client, tenant, "8400")
    assert events(found) == [
        ("list_enter", "8400", ann),
        ("list_enter", "8400", bob),
        ("list_exit", "8400", ann),
    ]
    assert all(set(c) == {"type", "list_id", "profile_id", "timestamp"} for c in found)
    assert all(TIMESTAMP.match(c["timestamp"]) for c in found), found
    assert [c["timestamp"] for c in found] == sorted(c["timestamp"] for c in found)


def test_changes_since_filters_by_moment(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("c1", "ann@example.com", add=[8400])])
    push(client, tenant, [contact("c1", "ann@example.com", remove=[8400])])
    everything = changes(client, tenant, "8400")
    assert [c["type"] for c in everything] == ["list_enter", "list_exit"]
    assert changes(client, tenant, "8400", since="2000-01-01T00:00:00+00:00") == everything
    assert changes(client, tenant, "8400", since="2999-01-01T00:00:00+00:00") == []


def test_changes_of_a_list_created_by_post_are_empty(client: Client, tenant: Tenant) -> None:
    assert create(client, tenant, {"id": "vip", "title": "VIP"}).status_code == 201
    assert changes(client, tenant, "vip") == []


def test_changes_of_an_unknown_list_are_not_found(client: Client, tenant: Tenant) -> None:
    response = client.get("/v2/lists/8400/changes", headers=tenant.headers)
    problem = assert_problem(response, 404)
    assert NOT_FOUND in problem["detail"]


# isolation --------------------------------------------------------------------------------------


def test_another_account_sees_none_of_the_lists(client: Client, tenant: Tenant, make_tenant: Any) -> None:
    push(client, tenant, [contact("c1", "ann@example.com", add=[8400])])
    assert create(client, tenant, {"id": "vip", "title": "VIP"}).status_code == 201
    other = make_tenant("other")
    for mode in ("active", "archived", "all"):
        assert all_lists(client, other, mode) == []
    assert_problem(client.get("/v2/lists/8400", headers=other.headers), 404)
    assert_problem(client.get("/v2/lists/8400/changes", headers=other.headers), 404)
    assert_problem(put(client, other, "vip", {"archived": True}), 404)
    assert [doc["id"] for doc in all_lists(client, tenant)] == ["8400", "vip"]


def test_accounts_may_use_the_same_list_id(client: Client, tenant: Tenant, make_tenant: Any) -> None:
    other = make_tenant("other")
    push(client, tenant, [contact("c1", "ann@example.com", add=[8400])])
    assert create(client, other, {"id": "8400", "title": "Theirs"}).status_code == 201
    assert (one_list(client, tenant, "8400")["title"], size(client, tenant, "8400")) == (None, 1)
    assert (one_list(client, other, "8400")["title"], size(client, other, "8400")) == ("Theirs", 0)
