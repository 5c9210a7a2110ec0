"""The integration check (``GET /v2/account/report``, ``patron report``): an account seeded through
the API with one known defect per rule finds exactly that defect, with its count and sample ids; a
clean account is ``ready``; an empty one names the record types never pushed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Tenant, push, run_cli
from patron import accounts, report
from patron.api.report import COMPUTING
from patron.tracking import wire
from support.app import App, Client, app_fixtures
from support.http import assert_problem, read
from test_gdpr import completed, request_deletion

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
    "push.warnings": (1, ["c-lenient"]),
    "freshness.last_push": (4, ["contact", "order", "product", "tag"]),
    "tracking.unknown_viewed_product": (1, ["p-ghost-view"]),
    "tracking.unknown_basket_product": (1, ["p-ghost-basket"]),
    "tracking.web_order_unseen": (1, ["o-web"]),
    "tracking.identified_sessions": (1, ["s-1"]),
}


def beacon(client: Client, tenant: Tenant, kind: str, d: dict[str, Any]) -> None:
    """One event of the website tag, as the tag sends it."""
    event = {"cid": "visitor-1", "sid": "s-1", "src": "|||||", "type": kind, "channel": "system", "d": d}
    answer = client.get(
        f"/track/v3/{tenant.hash}/event.gif", params={"data": wire.encode(event), "rnd": "a1"}
    )
    assert answer.status_code == 200


def browse(client: Client, tenant: Tenant) -> None:
    beacon(client, tenant, "pageview", {"type": "product", "pid": "p-1"})
    beacon(client, tenant, "viewproduct", {"pid": "p-ghost-view"})
    lines = [{"pid": "p-1", "q": 1, "tot": "10"}, {"pid": "p-ghost-basket", "q": 1, "tot": "10"}]
    beacon(client, tenant, "setbasket", {"id": "b-1", "total": "20", "cur": "GBP", "size": 2, "lis": lines})
    beacon(client, tenant, "transaction", {"tid": "o-seen"})
    beacon(client, tenant, "transaction", {"tid": "o-never"})


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
        contact("c-lenient", timestamp_acquired="2024-05-01T10:00:00"),
    ]


def defective_orders() -> list[dict[str, Any]]:
    just_now = datetime.now(UTC).isoformat()  # after the tag's events
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
        order("o-seen", channel="web", timestamp=just_now),
        order("o-web", channel="web", timestamp=just_now),
        order("o-web-before-the-tag", channel="web"),
        order("o-inactive", lineitems=[{"product_id": "p-inactive", "quantity": 2, "subtotal": 20}]),
    ]


@pytest.fixture(scope="module")
def defective(shared: App, client: Client) -> Tenant:
    tenant = shared.tenant("defective")
    seed_clean(client, tenant)
    push(client, tenant, defective_products())
    push(client, tenant, defective_contacts())
    browse(client, tenant)
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


def test_an_order_the_tag_saw_and_never_pushed_is_found_after_a_day(shared: App, defective: Tenant) -> None:
    def later(days: int) -> Any:
        def check(conn: Any) -> Any:
            account = accounts.get_account(conn, defective.hash)
            moment = accounts.now() + timedelta(days=days)
            return report.one(conn, account.id, moment, "tracking.order_not_pushed", 10, 0)

        return shared.store.read_blocking(check)

    assert later(0).count == 0
    found = later(2)
    assert (found.count, [s.id for s in found.samples]) == (1, ["o-never"])


def test_an_empty_account_names_the_record_types_never_pushed(shared: App, client: Client) -> None:
    tenant = shared.tenant("empty")
    body = read(client, tenant, REPORT)
    assert body["verdict"] == "not ready"
    never = {f["rule"]: f for f in body["findings"]}["freshness.never_pushed"]
    assert never["count"] == 3 and [s["id"] for s in never["samples"]] == ["contact", "order", "product"]
    assert body["findings"][0]["rule"] == "freshness.never_pushed"


def test_a_month_without_orders_is_a_gap_in_the_history(shared: App, client: Client) -> None:
    tenant = shared.tenant("history")
    placed = [
        ("2023-01", 10),
        ("2023-03", 10),
        ("2023-04", 10),
        ("2023-05", 20),
        ("2023-06", 1),
        ("2023-07", 20),
    ]
    records = [
        order(f"o-{month}-{i}", timestamp=f"{month}-15T10:00:00Z") for month, n in placed for i in range(n)
    ]
    push(client, tenant, records)
    found = read(client, tenant, f"{REPORT}?rule=history.order_gaps")
    assert found["count"] == 2
    assert found["samples"] == [{"id": "2023-02", "value": 0}, {"id": "2023-06", "value": 1}]
    assert found["summary"].startswith("orders per month: 2023-01 10, 2023-02 0, 2023-03 10")


def test_an_order_pushed_before_its_product_is_cleared_when_the_product_arrives(
    shared: App, client: Client
) -> None:
    tenant = shared.tenant("late catalogue")
    lines = [{"product_id": "p-late", "variant_id": "v-late", "quantity": 1, "subtotal": 20}]
    push(client, tenant, [order("o-early", lineitems=lines, subtotal=20, grand_total=25)])
    push(client, tenant, [product("v-early", is_variant=True, parent_id="p-late")])

    def unknown() -> dict[str, Any]:
        found = findings(client, tenant)
        return {
            rule: (found[rule]["count"], found[rule]["samples"])
            for rule in ("orders.unknown_product", "products.unknown_parent")
        }

    assert unknown() == {
        "orders.unknown_product": (1, [{"id": "o-early", "value": ["p-late", "v-late"]}]),
        "products.unknown_parent": (1, [{"id": "v-early", "value": ["p-late"]}]),
    }
    push(client, tenant, [product("p-late")])
    assert unknown() == {
        "orders.unknown_product": (1, [{"id": "o-early", "value": ["v-late"]}]),
        "products.unknown_parent": (0, []),
    }
    push(client, tenant, [product("v-late", is_variant=True, parent_id="p-late")])
    assert unknown()["orders.unknown_product"] == (0, [])


def test_a_record_rewritten_right_loses_its_defect(shared: App, client: Client) -> None:
    tenant = shared.tenant("fixed")
    push(client, tenant, [order("o-fix", grand_total=99)])
    push(client, tenant, [contact("c-fix", phone_number="+4400000000")])
    found = findings(client, tenant)
    assert found["orders.grand_total_mismatch"]["count"] == found["contacts.invalid_phone"]["count"] == 1
    push(client, tenant, [order("o-fix", grand_total=25)])
    push(client, tenant, [contact("c-fix", phone_number="+447400123456")])
    found = findings(client, tenant)
    assert found["orders.grand_total_mismatch"]["count"] == found["contacts.invalid_phone"]["count"] == 0


def test_an_anonymised_contact_keeps_no_defect(shared: App, client: Client) -> None:
    tenant = shared.tenant("forgotten")
    push(client, tenant, [contact("c-gone", phone_number="+4400000000")])
    assert findings(client, tenant)["contacts.invalid_phone"]["count"] == 1
    completed(client, tenant, request_deletion(client, tenant, email="c-gone@example.com")["id"])
    found = findings(client, tenant)
    assert found["contacts.invalid_phone"] == {**found["contacts.invalid_phone"], "count": 0, "samples": []}
    assert found["contacts.no_marketing_optin"]["count"] == 0


cents = st.integers(min_value=0, max_value=50_000)


@st.composite
def priced_orders(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Orders with amounts in whole cents, near-right and wrong totals alike."""
    found = []
    for n in range(draw(st.integers(min_value=1, max_value=12))):
        lines = [
            {"product_id": "p-1", "quantity": q, "unit_price": price / 100}
            if draw(st.booleans())
            else {"product_id": "p-1", "quantity": q, "subtotal": q * price / 100}
            for q, price in draw(st.lists(st.tuples(st.integers(1, 5), cents), min_size=1, max_size=4))
        ]
        parts = [draw(cents) for _ in range(3)]
        line_sum = sum(
            round(line.get("subtotal", line.get("unit_price", 0) * line["quantity"]) * 100) for line in lines
        )
        subtotal = line_sum + draw(st.sampled_from([0, 0, 1, -1, 2, 100]))
        grand = subtotal + parts[0] + parts[1] - parts[2] + draw(st.sampled_from([0, 1, -1, 2, -parts[1]]))
        found.append(
            order(
                f"o-{n}",
                lineitems=lines,
                subtotal=subtotal / 100,
                shipping=parts[0] / 100,
                tax=parts[1] / 100,
                discount=parts[2] / 100,
                grand_total=grand / 100,
            )
        )
    return found


def direct(orders_given: list[dict[str, Any]]) -> dict[str, set[str]]:
    """The orders each totals rule should find, computed in whole cents."""

    def c(value: float) -> Decimal:
        return Decimal(str(value)) * 100

    wrong: dict[str, set[str]] = {"orders.subtotal_mismatch": set(), "orders.grand_total_mismatch": set()}
    for o in orders_given:
        lines = sum(
            c(line["subtotal"]) if "subtotal" in line else c(line["unit_price"]) * line["quantity"]
            for line in o["lineitems"]
        )
        if abs(c(o["subtotal"]) - lines) > 1:
            wrong["orders.subtotal_mismatch"].add(o["id"])
        paid = c(o["subtotal"]) + c(o["shipping"]) - c(o["discount"])
        if abs(c(o["grand_total"]) - paid - c(o["tax"])) > 1 and abs(c(o["grand_total"]) - paid) > 1:
            wrong["orders.grand_total_mismatch"].add(o["id"])
    return wrong


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(given_orders=priced_orders())
def test_the_totals_rules_agree_with_a_direct_computation(
    shared: App, client: Client, given_orders: list[dict[str, Any]]
) -> None:
    tenant = shared.tenant("totals")
    push(client, tenant, given_orders)
    found = findings(client, tenant)
    for rule, expected in direct(given_orders).items():
        page = read(client, tenant, f"{REPORT}?rule={rule}&limit=250")
        assert found[rule]["count"] == len(expected)
        assert {s["id"] for s in page["samples"]} == expected


def test_an_account_asking_while_its_report_is_computed_is_told_to_wait(
    shared: App, client: Client, defective: Tenant
) -> None:
    other = shared.tenant("other")
    with COMPUTING.hold(defective.hash):
        busy = client.get(REPORT, headers=defective.headers)
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "5"
        assert "being computed" in busy.json()["detail"]
        assert read(client, other, REPORT)["verdict"] == "not ready"  # others are answered meanwhile
    assert read(client, defective, REPORT)["verdict"] == "not ready"


def test_pushes_are_applied_while_a_report_reads(shared: App, client: Client, defective: Tenant) -> None:
    """A report holds one read transaction; the writer and the worker go on meanwhile."""
    tenant = shared.tenant("busy")

    def report_then_push(conn: Any) -> tuple[Any, dict[str, Any]]:
        account = accounts.get_account(conn, defective.hash)
        assert account is not None
        first = report.report(conn, account.id, accounts.now())
        pushed = push(client, tenant, [order("o-meanwhile")])  # waits until the worker applied it
        return first, pushed

    found, pushed = shared.store.read_blocking(report_then_push)
    assert found.verdict == "not ready"
    assert read(client, tenant, f"/v2/push/{pushed['request_id']}")["status"] == "applied"
    assert read(client, tenant, "/v2/orders/o-meanwhile")["id"] == "o-meanwhile"
