"""The integration check (``GET /v2/account/report``, ``patron report``): an account seeded through
the API with one known defect per rule finds exactly that defect, with its count and sample ids; a
clean account is ``ready``; an empty one names the record types never pushed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import Tenant, push, run_cli
from support.app import App, Client, app_fixtures
from support.http import assert_problem, read

shared, client, make_tenant = app_fixtures()

REPORT = "/v2/account/report"
#: When the seeded orders were placed: recent, so that every order is in one month or two.
RECENT = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")


def product(pid: str, **fields: Any) -> dict[str, Any]:
    base = {
        "@type": "product",
        "id": pid,
        "title": pid,
        "price": 10,
        "currency": "GBP",
        "url": f"https://shop.example/{pid}",
        "image_url": f"https://shop.example/{pid}.jpg",
        "is_active": True,
    }
    return {**base, **fields}


def order(oid: str, **fields: Any) -> dict[str, Any]:
    base = {
        "@type": "order",
        "id": oid,
        "timestamp": RECENT,
        "currency": "GBP",
        "status": "complete",
        "is_valid": True,
        "customer": {"id": f"c-{oid}", "email": f"{oid}@example.com"},
        "subtotal": 20,
        "shipping": 5,
        "tax": 0,
        "discount": 0,
        "grand_total": 25,
        "lineitems": [{"product_id": "p-1", "quantity": 2, "subtotal": 20}],
    }
    return {**base, **fields}


def contact(cid: str, **fields: Any) -> dict[str, Any]:
    base = {
        "@type": "contact",
        "id": cid,
        "email": f"{cid}@example.com",
        "customer_id": f"cust-{cid}",
        "marketing_optin": "EXPLICITLY_OPTEDIN",
    }
    return {**base, **fields}


def seed_clean(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [product("p-1"), product("p-2")])
    push(client, tenant, [contact("ann")])
    push(client, tenant, [order("o-clean")])


#: rule -> (count, sample ids) that the defective account shows
EXPECTED: dict[str, tuple[int, list[str]]] = {
    "orders.unknown_product": (1, ["o-ghost"]),
    "orders.variant_without_options": (1, ["o-variant"]),
    "orders.subtotal_mismatch": (1, ["o-subtotal"]),
    "orders.grand_total_mismatch": (1, ["o-grand"]),
    "orders.foreign_currency_without_base": (1, ["o-eur"]),
    "orders.timestamp_out_of_range": (2, ["o-future", "o-old"]),
    "orders.no_customer": (1, ["o-anon"]),
    "orders.complete_but_invalid": (1, ["o-invalid"]),
    "orders.customer_id_emails": (1, ["c-shared"]),
    "products.unknown_parent": (1, ["v-orphan"]),
    "products.missing_fields": (1, ["p-bare"]),
    "products.listing_without_currency": (1, ["p-listed"]),
    "products.inactive_ordered": (1, ["p-inactive"]),
    "contacts.no_marketing_optin": (1, ["c-noopt"]),
    "contacts.subscribed_without_optin": (1, ["c-sub"]),
    "contacts.email_customer_ids": (1, ["twin@example.com"]),
    "contacts.invalid_phone": (2, ["c-phone", "c-phone-country"]),
}


def defective_products() -> list[dict[str, Any]]:
    return [
        product("v-orphan", is_variant=True, parent_id="p-missing"),
        product("v-ok", is_variant=True, parent_id="p-1"),
        {"@type": "product", "id": "p-bare", "title": "bare"},
        product(
            "p-listed", listings=[{"store": "uk", "price": 9}, {"store": "fr", "price": 9, "currency": "EUR"}]
        ),
        product("p-inactive", is_active=False),
        product("p-inactive-unsold", is_active=False),
    ]


def defective_contacts() -> list[dict[str, Any]]:
    no_optin = contact("c-noopt")
    del no_optin["marketing_optin"]
    return [
        no_optin,
        contact("c-sub", marketing_optin="NOT_SPECIFIED", timestamp_subscribed=RECENT),
        contact("c-twin-1", email="twin@example.com", customer_id="cust-a"),
        contact("c-twin-2", email="TWIN@example.com", customer_id="cust-b"),
        contact("c-phone", phone_number="+4400000000"),
        contact("c-phone-country", phone_number="+447400123456", country_id="FR"),
        contact("c-phone-ok", phone_number="+447400123456", country_id="GB"),
    ]


def defective_orders() -> list[dict[str, Any]]:
    return [
        order("o-ghost", lineitems=[{"product_id": "p-ghost", "quantity": 2, "subtotal": 20}]),
        order(
            "o-variant",
            lineitems=[{"product_id": "p-1", "variant_id": "p-2", "quantity": 2, "subtotal": 20}],
        ),
        order("o-subtotal", subtotal=30, grand_total=35),
        order("o-grand", grand_total=26),
        order("o-grand-ok", grand_total=25.005),  # within the cent
        order("o-eur", currency="EUR"),
        order("o-eur-base", currency="EUR", totals={"base": {"currency": "GBP", "grand_total": 21}}),
        order("o-future", timestamp="2999-01-01T00:00:00Z"),
        order("o-old", timestamp="1980-01-01T00:00:00Z"),
        order("o-anon", customer={"firstname": "Ann"}),
        order("o-invalid", is_valid=False),
        order("o-shared-1", customer={"id": "c-shared", "email": "one@example.com"}),
        order("o-shared-2", customer={"id": "c-shared", "email": "two@example.com"}),
        order("o-shared-3", customer={"id": "c-same", "email": "same@example.com"}),
        order("o-shared-4", customer={"id": "c-same", "email": "SAME@example.com"}),
        order("o-inactive", lineitems=[{"product_id": "p-inactive", "quantity": 2, "subtotal": 20}]),
    ]


@pytest.fixture(scope="module")
def defective(shared: App, client: Client) -> Tenant:
    tenant = shared.tenant("defective")
    seed_clean(client, tenant)
    push(client, tenant, defective_products())
    push(client, tenant, defective_contacts())
    push(client, tenant, defective_orders())
    return tenant


def findings(client: Client, tenant: Tenant) -> dict[str, dict[str, Any]]:
    body = read(client, tenant, REPORT)
    return {f["rule"]: f for f in body["findings"]}


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_each_defect_is_found_with_its_count_and_samples(
    client: Client, defective: Tenant, rule: str
) -> None:
    count, ids = EXPECTED[rule]
    found = findings(client, defective)[rule]
    assert found["count"] == count, found
    assert sorted(s["id"] for s in found["samples"]) == ids


def test_the_defective_account_is_not_ready_errors_first(client: Client, defective: Tenant) -> None:
    body = read(client, defective, REPORT)
    assert body["verdict"] == "not ready"
    assert body["tolerance"] == 0.01
    severities = [f["severity"] for f in body["findings"]]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)
    flagged = {f["rule"] for f in body["findings"] if f["count"]}
    assert flagged == set(EXPECTED)


def test_samples_carry_the_offending_value(client: Client, defective: Tenant) -> None:
    found = findings(client, defective)
    assert found["orders.unknown_product"]["samples"][0]["value"] == ["p-ghost"]
    assert found["orders.grand_total_mismatch"]["samples"][0]["value"] == {"grand_total": 26, "expected": 25}
    assert found["orders.customer_id_emails"]["samples"][0]["value"] == ["one@example.com", "two@example.com"]
    assert found["orders.foreign_currency_without_base"]["summary"] == "usual currency GBP"


def test_one_rule_pages_its_samples(client: Client, defective: Tenant) -> None:
    rule = "orders.timestamp_out_of_range"
    first = read(client, defective, f"{REPORT}?rule={rule}&limit=1")
    second = read(client, defective, f"{REPORT}?rule={rule}&limit=1&offset=1")
    assert first["rule"] == rule and first["count"] == second["count"] == 2
    assert [s["id"] for s in first["samples"] + second["samples"]] == ["o-future", "o-old"]
    assert read(client, defective, f"{REPORT}?rule={rule}&offset=2")["samples"] == []


def test_an_unknown_rule_or_a_bad_page_is_refused(client: Client, defective: Tenant) -> None:
    assert_problem(client.get(f"{REPORT}?rule=nope", headers=defective.headers), 404, "rule")
    assert_problem(
        client.get(f"{REPORT}?rule=orders.no_customer&limit=0", headers=defective.headers), 400, "limit"
    )
    assert_problem(client.get(f"{REPORT}?offset=-1", headers=defective.headers), 400, "offset")


def test_a_clean_account_is_ready(shared: App, client: Client) -> None:
    tenant = shared.tenant("clean")
    seed_clean(client, tenant)
    body = read(client, tenant, REPORT)
    assert body["verdict"] == "ready", [
        f for f in body["findings"] if f["count"] and f["severity"] == "error"
    ]
    assert body["errors"] == 0


def test_the_cli_prints_the_verdict_and_json(shared: App, client: Client, defective: Tenant) -> None:
    args = ["report", "--account", defective.hash]
    shown = run_cli(shared.data_dir, *args, check=False, environment=shared.environment)
    assert shown.returncode == 1, shown.stderr
    assert "not ready" in shown.stdout and "orders.no_customer" in shown.stdout
    given = run_cli(shared.data_dir, *args, "--json", check=False, environment=shared.environment)
    body = json.loads(given.stdout)
    assert body["verdict"] == "not ready"
    assert {f["rule"]: f["count"] for f in body["findings"]}["orders.no_customer"] == 1
