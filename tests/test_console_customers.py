"""The console's customers pages in Debian's Chromium through Playwright, on data pushed through the
API: the search by each kind of identifier, a profile's page (orders, timeline), values shown as
text, the admin's actions (GDPR deletion, unsubscribe, export) through the same paths as the API's,
what a viewer and another account's operator are refused, and axe-core's accessibility check."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from conftest import Tenant, eventually, push, run_cli, set_limits
from support.console import PASSWORD, Console, axe, browser_fixture, serving, sign_in

XSS = "<img src=x onerror=alert(1)>"
ANN = {
    "@type": "contact",
    "id": "c-ann",
    "email": "Ann.Lee@example.com",
    "customer_id": "cust-ann",
    "phone_number": "+447700900123",
    "firstname": "Ann",
    "lastname": "Lee",
    "marketing_optin": "EXPLICITLY_OPTEDIN",
}
ORDER = {
    "@type": "order",
    "id": "o-ann-1",
    "timestamp": "2024-05-01T10:00:00+00:00",
    "currency": "GBP",
    "grand_total": 25.5,
    "status": "complete",
    "customer": {"id": "cust-ann", "email": "ann.lee@example.com"},
    "lineitems": [
        {"product_id": "p-shirt", "sku": "SHIRT-M", "quantity": 2, "unit_price": 10, "total": 20},
        {"product_id": "p-sock", "quantity": 1, "total": 5.5},
    ],
}
EVENT = {
    "@type": "custom_event",
    "id": "e-ann-1",
    "event_type": "wishlist_add",
    "identity_email": "ann.lee@example.com",
    "timestamp": "2024-05-02T09:00:00+00:00",
    "properties": {"product": "p-hat"},
}


def contact(record_id: str, **fields: Any) -> dict[str, Any]:
    return {"@type": "contact", "id": record_id, "email": f"{record_id}@example.com", **fields}


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with serving(tmp_path_factory.mktemp("customers")) as served:
        data_dir = served.server.data_dir
        run_cli(data_dir, "accounts", "set-matching", "--account", served.shop.hash, "--phone", "on")
        for tenant in (served.shop, served.other):  # the tests read through the API often
            set_limits(data_dir, tenant.hash, "--data", "unlimited", "--push", "unlimited")
        with served.server.client() as client:
            push(client, served.shop, [ANN])
            push(client, served.shop, [ORDER])
            push(client, served.shop, [EVENT])
            push(
                client,
                served.shop,
                [
                    contact("c-xss", firstname=XSS, lastname="Smith"),
                    contact("c-del", customer_id="cust-del", firstname="Del"),
                    contact("c-uns", firstname="Una", marketing_optin="EXPLICITLY_OPTEDIN"),
                    contact("c-keep", firstname="Kit", marketing_optin="EXPLICITLY_OPTEDIN"),
                ],
            )
            push(client, served.other, [contact("c-other", firstname="Otto")])
        yield served


browser = browser_fixture()


@pytest.fixture
def api(console: Console) -> Iterator[httpx.Client]:
    with console.server.client() as client:
        yield client


def profile_of(api: httpx.Client, tenant: Tenant, email: str) -> dict[str, Any]:
    found = api.get("/v2/profiles", params={"email": email}, headers=tenant.headers)
    assert found.status_code == 200 and len(found.json()) == 1, found.text
    doc: dict[str, Any] = found.json()[0]
    return doc


def read_profile(api: httpx.Client, tenant: Tenant, profile_id: str) -> dict[str, Any]:
    answer = api.get(f"/v2/profiles/{profile_id}", headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


def search(page: Page, console: Console, text: str) -> list[str]:
    """The profile ids the search page lists for ``text``, typed in its form."""
    page.goto(console.account(console.shop, "/customers"))
    page.get_by_label("Email, customer id, phone number or profile id").fill(text)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r".*/customers\?q=.*"))
    return page.locator("tbody th code").all_inner_texts()


def test_the_search_finds_a_profile_by_each_kind_of_identifier(
    browser: Browser, console: Console, api: httpx.Client
) -> None:
    ann = profile_of(api, console.shop, "ann.lee@example.com")
    page = sign_in(browser, console, "viewer@example.com")
    for text in ["ANN.LEE@example.com", "cust-ann", "+447700900123", ann["id"]]:
        assert search(page, console, text) == [ann["id"]], text
    assert search(page, console, "nobody@example.com") == []
    assert "No profile has this" in page.locator("main").inner_text()
    page.goto(console.account(console.shop, "/customers"))  # no search: the latest updated profiles
    listed = page.locator("tbody th code").all_inner_texts()
    assert ann["id"] in listed and len(listed) == 5
    assert profile_of(api, console.other, "c-other@example.com")["id"] not in listed


def test_the_profile_page_shows_its_orders_and_timeline(
    browser: Browser, console: Console, api: httpx.Client
) -> None:
    ann = profile_of(api, console.shop, "ann.lee@example.com")
    page = sign_in(browser, console, "viewer@example.com")
    search(page, console, "cust-ann")
    page.get_by_role("link", name=ann["id"]).click()
    page.wait_for_url(re.compile(rf".*/customers/{ann['id']}$"))
    assert page.get_by_role("heading", level=1).inner_text() == "Ann Lee"
    orders = page.locator("#order-table tbody tr")
    assert orders.count() == 1
    row = orders.first.inner_text()
    assert "o-ann-1" in row and "complete" in row and "25.5 GBP" in row
    assert "p-shirt (SHIRT-M) \u00d7 2: 20" in row and "p-sock \u00d7 1: 5.5" in row  # x: times
    timeline = page.locator("#timeline-table tbody tr").all_inner_texts()
    assert [t.split("\t")[2] for t in timeline] == ["wishlist_add", "order"]
    assert "p-hat" in timeline[0] and "o-ann-1" in timeline[1]
    assert page.locator("#email-status").inner_text() == "subscribed"
    assert "cust-ann" in page.locator("main").inner_text()
    # a viewer sees no admin action
    assert page.get_by_role("button", name="Export as JSON").count() == 0
    assert page.get_by_role("link", name=re.compile("Delete this customer")).count() == 0


def test_a_merged_profile_leads_to_its_survivor(
    browser: Browser, console: Console, api: httpx.Client
) -> None:
    with console.server.client() as client:
        push(client, console.shop, [contact("c-m1", firstname="Mo"), contact("c-m2", firstname="Mo")])
    first = profile_of(api, console.shop, "c-m1@example.com")["id"]
    second = profile_of(api, console.shop, "c-m2@example.com")["id"]
    merge = api.post(
        "/v2/merge-profile",
        json={
            "survivor": {"type": "profile_hash", "value": first},
            "customers_to_merge": [{"type": "profile_hash", "value": second}],
        },
        headers=console.shop.headers,
    )
    assert merge.status_code == 202, merge.text
    job = merge.json()["id"]
    eventually(
        lambda: (
            api.get(f"/v2/merge-profile/{job}", headers=console.shop.headers).json()["status"] == "completed"
        ),
        "the merge",
    )
    page = sign_in(browser, console, "viewer@example.com")
    page.goto(console.account(console.shop, f"/customers/{second}"))
    assert page.url.endswith(f"/customers/{first}")
    assert second in page.locator("main").inner_text()  # listed as merged into it


def test_values_are_shown_as_text(browser: Browser, console: Console, api: httpx.Client) -> None:
    xss = profile_of(api, console.shop, "c-xss@example.com")
    page = sign_in(browser, console, "viewer@example.com")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    assert search(page, console, "c-xss@example.com") == [xss["id"]]
    assert f"{XSS} Smith" in page.locator("tbody td").first.inner_text()
    page.goto(console.account(console.shop, f"/customers/{xss['id']}"))
    assert page.locator("#profile-name").inner_text() == f"{XSS} Smith"
    assert page.get_by_role("heading", level=1).inner_text() == f"{XSS} Smith"
    assert page.locator("main img").count() == 0
    assert dialogs == []


def test_an_admin_deletes_a_customer_s_data_after_confirming(
    browser: Browser, console: Console, api: httpx.Client
) -> None:
    gone = profile_of(api, console.shop, "c-del@example.com")
    page = sign_in(browser, console, "admin@example.com")
    page.goto(console.account(console.shop, f"/customers/{gone['id']}"))
    page.get_by_role("link", name=re.compile("Delete this customer")).click()
    page.wait_for_url(re.compile(r".*/delete$"))
    assert read_profile(api, console.shop, gone["id"])["email"] == "c-del@example.com"  # nothing done yet
    page.get_by_role("button", name="Yes, delete this customer's data").click()
    request_id = page.locator("#deletion-id").inner_text()

    def completed() -> dict[str, Any] | None:
        found = api.get(f"/v2/data-deletion-requests/{request_id}", headers=console.shop.headers)
        assert found.status_code == 200, found.text
        doc: dict[str, Any] = found.json()
        return doc if doc["status"] == "completed" else None

    done = eventually(completed, "the deletion")
    assert done["identities"] and "admin@example.com" in done["comment"]
    after = read_profile(api, console.shop, gone["id"])
    assert after["email"].endswith("@anonymous.ometria") and after["firstname"] != "Del"
    assert "cust-del" not in json.dumps(after) and "c-del@example.com" not in json.dumps(after)
    assert search(page, console, "c-del@example.com") == []
    page.goto(console.account(console.shop, f"/customers/{gone['id']}"))
    assert "anonymised" in page.locator("main").inner_text()


def test_an_admin_unsubscribes_a_profile(browser: Browser, console: Console, api: httpx.Client) -> None:
    una = profile_of(api, console.shop, "c-uns@example.com")
    assert una["marketing_optin"] is True
    page = sign_in(browser, console, "admin@example.com")
    page.goto(console.account(console.shop, f"/customers/{una['id']}"))
    page.get_by_role("button", name="Unsubscribe c-uns@example.com from email").click()
    page.wait_for_url(re.compile(r".*\?done=unsubscribe$"))
    assert "unsubscribe is queued" in page.get_by_role("status").inner_text()

    def unsubscribed() -> list[dict[str, Any]]:
        listed = api.get("/v2/unsubscribes", headers=console.shop.headers).json()
        return [u for u in listed if u["email_address"] == "c-uns@example.com"]

    (found,) = eventually(unsubscribed, "the unsubscribe")
    assert found["profile_id"] == una["id"] and found["type"] == "app"
    assert read_profile(api, console.shop, una["id"])["marketing_optin"] is False
    page.reload()
    assert page.locator("#email-status").inner_text() == "unsubscribed"
    assert page.get_by_role("button", name=re.compile("^Unsubscribe")).count() == 0


def test_an_admin_exports_a_profile_as_json(browser: Browser, console: Console, api: httpx.Client) -> None:
    ann = profile_of(api, console.shop, "ann.lee@example.com")
    page = sign_in(browser, console, "admin@example.com")
    page.goto(console.account(console.shop, f"/customers/{ann['id']}"))
    with page.expect_download() as started:
        page.get_by_role("button", name="Export as JSON").click()
    download = started.value
    assert download.suggested_filename == f"profile-{ann['id']}.json"
    exported = json.loads(download.path().read_text())
    expected = api.get(f"/v2/profiles/{ann['id']}/export", headers=console.shop.headers).json()
    assert exported == expected
    assert exported["profile"] == read_profile(api, console.shop, ann["id"])
    assert [o["id"] for o in exported["orders"]] == ["o-ann-1"]


@contextmanager
def signed_in_client(console: Console, email: str) -> Iterator[tuple[httpx.Client, str]]:
    """An HTTP client with a session cookie, and the session's CSRF token (read from a page)."""
    with console.server.client(follow_redirects=False) as client:
        answer = client.post("/console/sign-in", data={"email": email, "password": PASSWORD})
        assert answer.status_code == 303, answer.text
        found = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/").text)
        assert found is not None
        yield client, found.group(1)


def test_a_viewer_is_refused_the_admin_actions(console: Console, api: httpx.Client) -> None:
    kit = profile_of(api, console.shop, "c-keep@example.com")
    base = f"/console/accounts/{console.shop.hash}/customers/{kit['id']}"
    deletions = api.get("/v2/data-deletion-requests", headers=console.shop.headers).json()
    with signed_in_client(console, "viewer@example.com") as (client, csrf):
        assert client.get(f"{base}/delete").status_code == 403
        for action, form in [
            ("export", {"csrf": csrf}),
            ("unsubscribe", {"csrf": csrf}),
            ("delete", {"csrf": csrf, "confirm": "yes"}),
        ]:
            refused = client.post(f"{base}/{action}", data=form)
            assert refused.status_code == 403, action
            assert "only an admin" in refused.text and "c-keep@example.com" not in refused.text
    assert read_profile(api, console.shop, kit["id"]) == kit  # nothing changed
    assert api.get("/v2/data-deletion-requests", headers=console.shop.headers).json() == deletions
    unsubscribes = api.get("/v2/unsubscribes", headers=console.shop.headers).json()
    assert [u for u in unsubscribes if u["profile_id"] == kit["id"]] == []
    # an admin's form without its CSRF token is refused too
    with signed_in_client(console, "admin@example.com") as (admin, _):
        assert admin.post(f"{base}/unsubscribe", data={"csrf": "forged"}).status_code == 403
        assert admin.post(f"{base}/delete", data={"csrf": "forged", "confirm": "yes"}).status_code == 403
    assert read_profile(api, console.shop, kit["id"]) == kit


def test_another_accounts_operator_gets_404(console: Console, api: httpx.Client) -> None:
    ann = profile_of(api, console.shop, "ann.lee@example.com")
    base = f"/console/accounts/{console.shop.hash}/customers"
    with signed_in_client(console, "other@example.com") as (client, csrf):
        for path in [base, f"{base}?q=cust-ann", f"{base}/{ann['id']}", f"{base}/{ann['id']}/delete"]:
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert "Ann" not in answer.text
        for action in ["export", "unsubscribe", "delete"]:
            answer = client.post(f"{base}/{ann['id']}/{action}", data={"csrf": csrf, "confirm": "yes"})
            assert answer.status_code == 404, action
        own = f"/console/accounts/{console.other.hash}/customers/{ann['id']}"
        assert client.get(own).status_code == 404  # a profile of another account, under its own
    assert read_profile(api, console.shop, ann["id"])["marketing_optin"] is True


def test_the_customers_pages_have_no_serious_accessibility_violations(
    browser: Browser, console: Console, api: httpx.Client
) -> None:
    ann = profile_of(api, console.shop, "ann.lee@example.com")
    page = sign_in(browser, console, "admin@example.com", for_axe=True)
    for path in [
        "/customers",
        "/customers?q=cust-ann",
        f"/customers/{ann['id']}",
        f"/customers/{ann['id']}/delete",
    ]:
        page.goto(console.account(console.shop, path))
        assert axe(page) == [], path
    page.context.close()


def test_the_profile_page_lists_the_emails_sent_to_it(
    browser: Browser, console: Console, api: httpx.Client
) -> None:
    ann = profile_of(api, console.shop, "ann.lee@example.com")
    body = {
        "from": {"email": "shop@example.com", "name": "Shop"},
        "profile_id": ann["id"],
        "subject": "Your order <o-ann-1>",
        "html": "<p>Thanks</p>",
    }
    sent = api.post("/v2/transactional-email/send", json=body, headers=console.shop.headers)
    assert sent.status_code == 202, sent.text
    page = sign_in(browser, console, "viewer@example.com")
    page.goto(f"{console.account(console.shop)}/customers/{ann['id']}")
    row = page.locator("#sent + table tbody tr").first.inner_text()
    assert "Your order <o-ann-1>" in row and "ann.lee@example.com" in row
