"""The single customer view through HTTP and the CLI: identity resolution (customer id, then email,
then phone when the account turns it on; junk values; customer ids never merged automatically; email
changes), how orders and custom events attach (reference section 5.2), the profile document (section
5.5: names from one contact, stats of valid orders in the base currency, dates), the profile endpoints,
and ``patron profiles rebuild``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import Connection, delete, update

from conftest import Tenant, push, run_cli
from patron import accounts
from patron.store import schema
from support.app import App, Client, app_fixtures
from support.http import assert_problem, read

shared, client, make_tenant = app_fixtures()
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")


# helpers ----------------------------------------------------------------------------------------


def contact(contact_id: str, collection: str = "default", **fields: Any) -> dict[str, Any]:
    return {"@type": "contact", "@collection": collection, "id": contact_id, **fields}


def order(order_id: str, total: float = 10, **fields: Any) -> dict[str, Any]:
    return {"@type": "order", "id": order_id, "grand_total": total, "currency": "GBP", **fields}


def event(event_id: str, **identity: Any) -> dict[str, Any]:
    return {"@type": "custom_event", "id": event_id, "event_type": "viewed", **identity}


def all_profiles(client: Client, tenant: Tenant) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while page := read(client, tenant, f"/v2/profiles?limit=250&offset={len(found)}"):
        found += page
    return found


def by_email(client: Client, tenant: Tenant, email: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = read(client, tenant, f"/v2/profiles?email={email}")
    return found


def the_profile(client: Client, tenant: Tenant, email: str) -> dict[str, Any]:
    [found] = by_email(client, tenant, email)
    return found


def identities(profile: dict[str, Any]) -> set[tuple[str, str]]:
    return {(each["type"], each["id"]) for each in profile["identities"]}


def order_ids_of(client: Client, tenant: Tenant, profile: dict[str, Any]) -> int:
    count: int = read(client, tenant, f"/v2/profiles/{profile['id']}")["stats"]["orders_attempted"]
    return count


# identity resolution ----------------------------------------------------------------------------


def test_new_customers_get_distinct_ids_shaped_like_ometrias(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact(f"c{i}", email=f"c{i}@example.com") for i in range(100)])
    ids = [p["id"] for p in all_profiles(client, tenant)]
    assert len(ids) == len(set(ids)) == 100
    assert all(re.fullmatch(r"[0-9a-f]{4}-[0-9a-f]{6}-[0-9a-f]{6}", i) for i in ids), ids


def test_contacts_of_one_customer_id_make_one_profile(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("a", customer_id="C1", email="ann@example.com")])
    push(client, tenant, [contact("b", "shop2", customer_id="C1", email="ann.work@example.com")])
    [profile] = all_profiles(client, tenant)
    assert profile["customer_id"] == "C1"
    assert identities(profile) == {
        ("customer_id", "C1"),
        ("email", "ann@example.com"),
        ("email", "ann.work@example.com"),
    }


def test_contacts_of_one_email_make_one_profile_whatever_its_case(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("a", email="Ann@Example.com", firstname="Ann")])
    push(client, tenant, [contact("a", "newsletter", email="ann@example.com")])
    [profile] = all_profiles(client, tenant)
    assert identities(profile) == {("email", "ann@example.com")}
    assert profile["email"] == "ann@example.com"
    assert by_email(client, tenant, "ANN@example.com") == [profile]


def test_customer_id_is_tried_before_email(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("a", customer_id="C1", email="ann@example.com")])
    push(client, tenant, [contact("b", email="bob@example.com")])
    push(client, tenant, [contact("c", "shop2", customer_id="C1", email="bob@example.com")])
    ann, bob = the_profile(client, tenant, "ann@example.com"), the_profile(client, tenant, "bob@example.com")
    assert ann["id"] != bob["id"]
    assert ann["customer_id"] == "C1" and bob["customer_id"] is None
    # bob@ stays bob's: an identifier another profile holds is ignored
    assert identities(ann) == {("customer_id", "C1"), ("email", "ann@example.com")}


def test_two_customer_ids_are_never_merged_automatically(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("a", customer_id="C1", email="ann@example.com")])
    push(client, tenant, [contact("b", "shop2", customer_id="C2", email="ann@example.com")])
    first, second = by_email(client, tenant, "ann@example.com")
    assert (first["customer_id"], second["customer_id"]) == ("C1", "C2")
    assert identities(first) == {("customer_id", "C1"), ("email", "ann@example.com")}
    assert identities(second) == {("customer_id", "C2")}  # the email is the first profile's


def test_a_profile_holds_at_most_one_customer_id(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("a", email="ann@example.com")])
    push(client, tenant, [order("o1", customer={"id": "C1", "email": "ann@example.com"})])
    push(client, tenant, [order("o2", customer={"id": "C2", "email": "ann@example.com"})])
    profiles_now = all_profiles(client, tenant)
    assert sorted(p["customer_id"] for p in profiles_now) == ["C1", "C2"]
    ann = the_profile(client, tenant, "ann@example.com")
    assert identities(ann) == {("customer_id", "C1"), ("email", "ann@example.com")}
    assert ann["stats"]["orders"] == 1


@pytest.mark.parametrize("junk", ["null", "undefined", "0", "-1", "anonymous", "test", "NULL", "Anonymous"])
def test_junk_identifiers_join_nothing(client: Client, tenant: Tenant, junk: str) -> None:
    push(client, tenant, [contact("a", customer_id=junk, email="ann@example.com")])
    push(client, tenant, [contact("b", customer_id=junk, email="bob@example.com")])
    push(client, tenant, [order("o1", customer={"id": junk})])
    ann, bob = the_profile(client, tenant, "ann@example.com"), the_profile(client, tenant, "bob@example.com")
    assert ann["id"] != bob["id"]
    assert ann["customer_id"] is None and bob["customer_id"] is None
    assert len(all_profiles(client, tenant)) == 2  # the order with a junk id is linked to nobody


def test_phone_numbers_join_only_when_the_account_turns_matching_on(shared: App, client: Client) -> None:
    off, on = shared.tenant("phones off"), shared.tenant("phones on")
    result = run_cli(
        shared.data_dir,
        "accounts",
        "set-matching",
        "--account",
        on.hash,
        "--phone",
        "on",
        environment=shared.environment,
    )
    assert "phone number matching on" in result.stdout
    for tenant in (off, on):
        push(client, tenant, [contact("a", email="ann@example.com", phone_number="+447812122136")])
        push(
            client,
            tenant,
            [contact("b", "sms", email="ann.mobile@example.com", phone_number="+447812122136")],
        )
    assert len(all_profiles(client, off)) == 2
    [joined] = all_profiles(client, on)
    assert ("phone_number", "+447812122136") in identities(joined)


def test_an_email_change_moves_the_identity(client: Client, tenant: Tenant) -> None:
    """Section 5.1: the same collection and id with a new email, in a separate request."""
    push(client, tenant, [contact("uuid_4567", customer_id="uuid_4567", email="bob@example.com")])
    [before] = all_profiles(client, tenant)
    push(client, tenant, [contact("uuid_4567", customer_id="uuid_4567", email="bob@ometria.com")])
    [after] = all_profiles(client, tenant)
    assert after["id"] == before["id"]
    assert identities(after) == {("customer_id", "uuid_4567"), ("email", "bob@ometria.com")}
    assert by_email(client, tenant, "bob@example.com") == []
    push(client, tenant, [contact("newcomer", email="bob@example.com")])  # the old email is free again
    assert the_profile(client, tenant, "bob@example.com")["id"] != after["id"]


def test_an_email_another_contact_still_has_stays(client: Client, tenant: Tenant) -> None:
    push(
        client,
        tenant,
        [contact("a", email="ann@example.com"), contact("a", "shop2", email="ann@example.com")],
    )
    push(client, tenant, [contact("a", email="ann.new@example.com")])
    [profile] = all_profiles(client, tenant)
    assert identities(profile) == {("email", "ann@example.com"), ("email", "ann.new@example.com")}


def test_profile_id_directive_joins_that_profile(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("a", email="ann@example.com")])
    ann = the_profile(client, tenant, "ann@example.com")
    push(client, tenant, [contact("b", "app", email="ann.app@example.com", **{"@profile_id": ann["id"]})])
    [profile] = all_profiles(client, tenant)
    assert identities(profile) == {("email", "ann@example.com"), ("email", "ann.app@example.com")}


# orders: the table of section 5.2 ---------------------------------------------------------------


def test_order_with_id_and_email_and_no_profile_starts_one_without_marketing_preferences(
    client: Client, tenant: Tenant
) -> None:
    push(client, tenant, [order("o1", customer={"id": "C1", "email": "ann@example.com"})])
    [profile] = all_profiles(client, tenant)
    assert identities(profile) == {("customer_id", "C1"), ("email", "ann@example.com")}
    assert profile["marketing_optin"] is None
    assert profile["stats"]["orders"] == 1


def test_order_with_id_and_email_attaches_to_the_profile_of_the_id(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("a", customer_id="C1", email="ann@example.com")])
    push(client, tenant, [order("o1", customer={"id": "C1", "email": "other@example.com"})])
    [profile] = all_profiles(client, tenant)
    assert profile["stats"]["orders"] == 1


@pytest.mark.parametrize("customer", [{"email": "ann@example.com"}, {"id": "C1"}])
def test_order_with_one_identifier_starts_or_joins_a_profile(
    client: Client, tenant: Tenant, customer: dict[str, str]
) -> None:
    push(client, tenant, [order("o1", customer=customer)])
    push(client, tenant, [order("o2", customer=customer)])
    [profile] = all_profiles(client, tenant)
    assert profile["stats"]["orders"] == 2


def test_order_by_email_shared_by_two_customer_ids_goes_to_the_profile_holding_the_email(
    client: Client, tenant: Tenant
) -> None:
    push(client, tenant, [contact("a", customer_id="C1", email="ann@example.com")])
    push(client, tenant, [contact("b", "shop2", customer_id="C2", email="ann@example.com")])
    push(client, tenant, [order("o1", customer={"email": "ann@example.com"})])
    first, second = by_email(client, tenant, "ann@example.com")
    assert (first["stats"]["orders"], second["stats"]["orders"]) == (1, 0)


def test_order_with_only_names_is_stored_and_linked_to_nobody(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("a", email="ann@example.com", firstname="Ann", lastname="Smith")])
    push(client, tenant, [order("o1", customer={"firstname": "Ann", "lastname": "Smith"})])
    assert read(client, tenant, "/v2/orders/o1")["customer"] == {"firstname": "Ann", "lastname": "Smith"}
    [profile] = all_profiles(client, tenant)
    assert profile["stats"]["orders_attempted"] == 0


def test_an_order_whose_customer_changes_moves_to_the_new_profile(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("a", email="ann@example.com"), contact("b", email="bob@example.com")])
    push(client, tenant, [order("o1", 25, customer={"email": "ann@example.com"})])
    push(client, tenant, [order("o1", 25, customer={"email": "bob@example.com"})])
    ann, bob = the_profile(client, tenant, "ann@example.com"), the_profile(client, tenant, "bob@example.com")
    assert (ann["stats"]["revenue"], bob["stats"]["revenue"]) == (0, 25)


# custom events -----------------------------------------------------------------------------------


def events_of(client: Client, tenant: Tenant, profile: dict[str, Any]) -> list[str]:
    return [e["id"] for e in read(client, tenant, f"/v2/custom-events?profile_id={profile['id']}&limit=250")]


def test_custom_events_attach_by_profile_id_then_account_id_then_email(
    client: Client, tenant: Tenant
) -> None:
    push(client, tenant, [contact("a", customer_id="C1", email="ann@example.com")])
    push(client, tenant, [contact("b", customer_id="C2", email="bob@example.com")])
    ann, bob = the_profile(client, tenant, "ann@example.com"), the_profile(client, tenant, "bob@example.com")
    push(
        client,
        tenant,
        [
            event(
                "by-profile", profile_id=ann["id"], identity_account_id="C2", identity_email="bob@example.com"
            ),
            event("by-account", identity_account_id="C2", identity_email="ann@example.com"),
            event("by-email", identity_email="ann@example.com"),
            event("unknown-profile", profile_id="0000-000000-000000", identity_email="bob@example.com"),
        ],
    )
    assert sorted(events_of(client, tenant, ann)) == ["by-email", "by-profile"]
    assert sorted(events_of(client, tenant, bob)) == ["by-account", "unknown-profile"]


# the profile document ----------------------------------------------------------------------------


def test_names_come_from_one_contact_the_most_recent_with_a_name(client: Client, tenant: Tenant) -> None:
    push(
        client,
        tenant,
        [contact("a", email="ann@example.com", prefix="Ms", firstname="Ann", lastname="Smith")],
    )
    push(client, tenant, [contact("b", "app", email="ann@example.com", firstname="Annie")])
    profile = the_profile(client, tenant, "ann@example.com")
    assert (profile["prefix"], profile["firstname"], profile["lastname"], profile["name"]) == (
        None,
        "Annie",
        None,
        "Annie",
    )
    push(client, tenant, [contact("a", email="ann@example.com", lastname="Smythe")])  # now the most recent
    profile = the_profile(client, tenant, "ann@example.com")
    assert (profile["prefix"], profile["firstname"], profile["lastname"]) == ("Ms", "Ann", "Smythe")


def test_the_profile_document(client: Client, tenant: Tenant) -> None:
    push(
        client,
        tenant,
        [
            contact(
                "a",
                customer_id="C1",
                email="ann@example.com",
                firstname="Ann",
                lastname="Smith",
                gender="f",
                date_of_birth="1990-02-01",
                country_id="gb",
                timestamp_acquired="2018-04-19T09:00:00+00",
                marketing_optin="EXPLICITLY_OPTEDIN",
                properties={"tier": "gold", "pets": 1},
            ),
            contact("a", "app", email="ann@example.com", properties={"pets": 2}),
        ],
    )
    push(
        client,
        tenant,
        [
            order(
                "o1",
                100,
                timestamp="2024-01-05T10:00:00Z",
                customer={"id": "C1"},
                lineitems=[{"product_id": "p", "quantity": 2}],
            ),
            order(
                "o2",
                80,
                currency="EUR",
                timestamp="2024-03-01T10:00:00+01:00",
                customer={"email": "ann@example.com"},
                totals={"base": {"currency": "GBP", "grand_total": 70.5}},
                lineitems=[{"product_id": "p", "quantity": 1}],
            ),
            order("o3", 999, timestamp="2024-06-01T00:00:00Z", is_valid=False, customer={"id": "C1"}),
            order("o4", 555, timestamp="2024-07-01T00:00:00Z", status="Cancelled", customer={"id": "C1"}),
        ],
    )
    profile = the_profile(client, tenant, "ann@example.com")
    assert re.fullmatch(r"[0-9a-f]{4}-[0-9a-f]{6}-[0-9a-f]{6}", profile["id"])
    assert profile == {
        "@type": "profile",
        "id": profile["id"],
        "customer_id": "C1",
        "email": "ann@example.com",
        "name": "Ann Smith",
        "prefix": None,
        "firstname": "Ann",
        "middlename": None,
        "lastname": "Smith",
        "suffix": None,
        "gender": "f",
        "date_of_birth": "1990-02-01",
        "country_id": "GB",
        "country": "GB",
        "marketing_optin": True,
        "channels": {"sms": {"allow_marketing": None, "status": None, "pending_double_optin": False}},
        "seen": False,
        "identities": [{"id": "C1", "type": "customer_id"}, {"id": "ann@example.com", "type": "email"}],
        "lists": [],
        "dates": {
            "acquired": "2018-04-19T09:00:00+00:00",
            "first_purchase": "2024-01-05T10:00:00+00:00",
            "last_purchase": "2024-03-01T09:00:00+00:00",
            "first_seen": None,
            "last_seen": None,
            "last_email_click": None,
        },
        "stats": {
            "orders": 2,
            "orders_attempted": 4,
            "revenue": 170.5,
            "aov": 85.25,
            "total_items": 3,
            "visits": 0,
            "email_clicks": 0,
        },
        "tags": [],
        "properties": {"tier": "gold", "pets": 2},
    }


def test_cancelling_an_order_takes_it_out_of_the_stats(client: Client, tenant: Tenant) -> None:
    push(
        client,
        tenant,
        [
            order("o1", 40, customer={"email": "ann@example.com"}),
            order("o2", 60, customer={"email": "ann@example.com"}),
        ],
    )
    assert the_profile(client, tenant, "ann@example.com")["stats"]["revenue"] == 100
    push(client, tenant, [{"@type": "order", "id": "o2", "status": "cancelled"}])
    stats = the_profile(client, tenant, "ann@example.com")["stats"]
    assert (stats["orders"], stats["revenue"], stats["aov"]) == (1, 40, 40)
    push(client, tenant, [{"@type": "order", "id": "o2", "status": "complete", "is_valid": False}])
    assert the_profile(client, tenant, "ann@example.com")["stats"]["orders"] == 1
    push(client, tenant, [{"@type": "order", "id": "o2", "is_valid": True}])
    assert the_profile(client, tenant, "ann@example.com")["stats"]["revenue"] == 100


def test_dates_are_stamped_to_the_second_in_utc(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("a", email="ann@example.com")])
    dates = the_profile(client, tenant, "ann@example.com")["dates"]
    assert STAMP.match(dates["acquired"]), dates  # no timestamp_acquired: when the profile began


# the endpoints ----------------------------------------------------------------------------------


def test_profiles_are_paged_oldest_first(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact(f"c{i}", email=f"person{i}@example.com") for i in range(12)])
    first = read(client, tenant, "/v2/profiles")
    assert [p["email"] for p in first] == [f"person{i}@example.com" for i in range(10)]  # default limit 10
    rest = read(client, tenant, "/v2/profiles?limit=5&offset=10")
    assert [p["email"] for p in rest] == ["person10@example.com", "person11@example.com"]
    assert len(read(client, tenant, "/v2/profiles?limit=1000")) == 12  # clamped to 250


def test_update_since_is_a_day(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("a", email="ann@example.com")])
    assert len(read(client, tenant, "/v2/profiles?updateSince=2000-01-01")) == 1
    assert read(client, tenant, "/v2/profiles?updateSince=2999-01-01") == []
    response = client.get("/v2/profiles?updateSince=yesterday", headers=tenant.headers)
    assert_problem(response, 400, "updateSince")


def test_by_email_is_an_array_and_empty_when_nobody_has_it(client: Client, tenant: Tenant) -> None:
    assert by_email(client, tenant, "nobody@example.com") == []
    push(client, tenant, [contact("a", email="ann@example.com")])
    assert [p["email"] for p in by_email(client, tenant, "ann@example.com")] == ["ann@example.com"]


def test_an_unknown_profile_is_a_404_problem(client: Client, tenant: Tenant) -> None:
    response = client.get("/v2/profiles/0000-000000-000000", headers=tenant.headers)
    assert_problem(response, 404, "profile_id")


def test_profile_read_by_id_is_the_listed_document(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("a", email="ann@example.com", firstname="Ann")])
    [listed] = all_profiles(client, tenant)
    assert read(client, tenant, f"/v2/profiles/{listed['id']}") == listed


# rebuild ----------------------------------------------------------------------------------------


def rebuild(app: App, tenant: Tenant) -> str:
    result = run_cli(
        app.data_dir, "profiles", "rebuild", "--account", tenant.hash, environment=app.environment
    )
    return result.stdout.strip()


def test_rebuild_recomputes_what_the_worker_kept_and_changes_nothing(
    shared: App, client: Client, tenant: Tenant
) -> None:
    push(
        client,
        tenant,
        [contact("a", customer_id="C1", email="ann@example.com", firstname="Ann", **{"@add_to_lists": [1]})],
    )
    push(client, tenant, [contact("b", "shop2", customer_id="C2", email="ann@example.com")])
    push(
        client,
        tenant,
        [order("o1", customer={"id": "C1"}), order("o2", customer={"email": "bob@example.com"})],
    )
    push(client, tenant, [contact("a", email="ann.new@example.com", marketing_optin="EXPLICITLY_OPTEDOUT")])
    before = all_profiles(client, tenant)
    assert (
        rebuild(shared, tenant)
        == f"{tenant.hash}: 0 records linked, 3 profiles recomputed, 0 changed, 0 lists recounted"
    )
    assert all_profiles(client, tenant) == before


def test_rebuild_repairs_a_profile_that_is_out_of_step(shared: App, client: Client, tenant: Tenant) -> None:
    push(client, tenant, [contact("a", email="ann@example.com", firstname="Ann")])
    [before] = all_profiles(client, tenant)
    account = shared.store.read_blocking(lambda conn: accounts.get_account(conn, tenant.hash))
    shared.store.write_blocking(
        lambda conn: conn.execute(
            update(schema.profiles).where(schema.profiles.c.account_id == account.id).values(data="{}")
        )
    )
    assert (
        rebuild(shared, tenant)
        == f"{tenant.hash}: 0 records linked, 1 profiles recomputed, 1 changed, 0 lists recounted"
    )
    assert all_profiles(client, tenant) == [before]


def test_rebuild_links_records_stored_before_profiles_existed(
    shared: App, client: Client, tenant: Tenant
) -> None:
    """As after an upgrade from a version without profiles: no profile, no identity, no link."""
    push(client, tenant, [contact("a", customer_id="C1", email="ann@example.com", firstname="Ann")])
    push(
        client, tenant, [order("o1", 30, customer={"id": "C1"}), order("o2", 5, customer={"firstname": "X"})]
    )
    account = shared.store.read_blocking(lambda conn: accounts.get_account(conn, tenant.hash))

    def forget(conn: Connection) -> None:
        for table in (schema.profiles, schema.identities):
            conn.execute(delete(table).where(table.c.account_id == account.id))
        for table in (schema.contacts, schema.orders):
            conn.execute(update(table).where(table.c.account_id == account.id).values(profile=None))

    shared.store.write_blocking(forget)
    assert all_profiles(client, tenant) == []
    assert (
        rebuild(shared, tenant)
        == f"{tenant.hash}: 2 records linked, 1 profiles recomputed, 0 changed, 0 lists recounted"
    )
    [profile] = all_profiles(client, tenant)
    assert (profile["firstname"], profile["customer_id"], profile["stats"]["revenue"]) == ("Ann", "C1", 30)


def test_rebuild_of_an_unknown_account_fails(shared: App) -> None:
    result = run_cli(
        shared.data_dir,
        "profiles",
        "rebuild",
        "--account",
        "0" * 16,
        check=False,
        environment=shared.environment,
    )
    assert result.returncode != 0
    assert "0000000000000000" in result.stderr


def test_absurd_amounts_are_stored_and_bounded_in_the_stats(client: Client, tenant: Tenant) -> None:
    huge = order(
        "o1",
        1e200,
        customer={"email": "ann@example.com"},
        lineitems=[{"product_id": "p", "quantity": 10**20}],
    )
    reply = push(client, tenant, [huge, order("o2", 1e200, customer={"email": "ann@example.com"})])
    assert (reply["accepted"], reply["rejected"]) == (2, 0)
    assert read(client, tenant, "/v2/orders/o1")["lineitems"][0]["quantity"] == 10**20
    stats = the_profile(client, tenant, "ann@example.com")["stats"]
    assert (stats["orders"], stats["revenue"], stats["total_items"]) == (2, 2 * 10**12, 10**12)
    assert read(client, tenant, "/v2/push/_errors") == []
