"""The console's segments pages in Debian's Chromium through Playwright, on both stores, with profiles
pushed through the real API: an admin counts a rule (htmx, the dry run's path), saves it, sees it
built with its members, changes it and deletes it (confirmed); a bad rule shows the problem's path
and changes nothing; a segment's name is shown as text; a viewer, a form without the CSRF token and
another account's operator change nothing; the entries show on the profile's timeline; axe-core
checks every page."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from conftest import eventually, push, set_limits
from support.console import (
    Console,
    api,
    axe,
    browser_fixture,
    serving,
    sign_in,
    signed_in_client,
)

BUYERS = '{"all": [{"field": "stats.orders", "op": "gte", "value": 1}]}'
NEVER_BOUGHT = '{"all": [{"orders": "count", "op": "lt", "value": 1}]}'
BAD = '{"all": [{"field": "stats.orders", "op": "most", "value": 1}]}'
SCRIPTED = "<script>alert('segment')</script>"
ORDER = {
    "@type": "order",
    "id": "o-1",
    "timestamp": "2024-05-01T10:00:00+00:00",
    "currency": "GBP",
    "grand_total": 20,
    "status": "complete",
    "customer": {"id": "ada", "email": "ada@example.com"},
}


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, new_database_url: Callable[[], str | None]
) -> Iterator[Console]:
    url = new_database_url()
    environment = {} if url is None else {"PATRON_DATABASE_URL": url}
    with serving(tmp_path_factory.mktemp("console-segments"), environment) as served:
        shop = served.shop
        set_limits(
            served.server.data_dir,
            shop.hash,
            "--data",
            "unlimited",
            "--push",
            "unlimited",
            environment=environment,
        )
        with served.server.client() as client:
            people = [
                {"@type": "contact", "id": "c-ada", "email": "ada@example.com", "customer_id": "ada"},
                {"@type": "contact", "id": "c-bob", "email": "bob@example.com", "customer_id": "bob"},
            ]
            push(client, shop, people)
            push(client, shop, [ORDER])
            other = client.post(
                "/v2/segments", json={"name": "Theirs", "rules": {"list": "x"}}, headers=served.other.headers
            )
            assert other.status_code == 201, other.text
        yield served


browser = browser_fixture()


def segments(console: Console, clients: list[httpx.Client], tenant: Any = None) -> list[dict[str, Any]]:
    """The account's segments as ``GET /v2/segments`` gives them."""
    tenant = tenant or console.shop
    answer = api(console, clients).get("/v2/segments", params={"limit": 100}, headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def member_emails(page: Page) -> list[str]:
    return page.locator("section[aria-labelledby=members] tbody td:nth-child(2)").all_inner_texts()


def built(page: Page, emails: list[str]) -> bool:
    """Reload until the segment is ready with exactly these members."""
    page.reload()
    ready = page.locator(".stats div").filter(has_text="Status").locator("dd").inner_text() == "ready"
    return ready and sorted(member_emails(page)) == emails


def test_an_admin_counts_saves_changes_and_deletes_a_segment(
    browser: Browser, console: Console, clients: list[httpx.Client]
) -> None:
    page = sign_in(browser, console, "admin@example.com")
    page.goto(console.account(console.shop, "/segments"))
    page.get_by_role("link", name="New segment").click()
    page.wait_for_url(re.compile(r".*/segments/new$"))
    page.get_by_label("Name").fill("Buyers")
    page.get_by_label("Rules (JSON)").fill(BAD)
    page.get_by_role("button", name="Count").click()
    problem = page.locator("#count .problem")
    assert "rules.all[0].op" in problem.inner_text()
    page.get_by_label("Rules (JSON)").fill(BUYERS)
    page.get_by_role("button", name="Count").click()
    page.locator("#count .count").wait_for()
    assert page.locator("#count").inner_text() == "1 profile meets this rule now"
    assert [s["name"] for s in segments(console, clients)] == []  # counting saved nothing

    page.get_by_role("button", name="Save the segment").click()
    page.wait_for_url(re.compile(r".*/segments/\d+$"))
    segment_url = page.url
    eventually(lambda: built(page, ["ada@example.com"]), "the segment built with its member")
    assert '"stats.orders"' in page.locator("#rules-text").inner_text()
    [change] = page.locator("section[aria-labelledby=changes] tbody tr").all()
    assert change.locator("td").nth(1).inner_text() == "entered"

    member = page.locator("section[aria-labelledby=members] tbody th a")
    ada = member.inner_text()
    member.click()
    page.wait_for_url(re.compile(rf".*/customers/{ada}$"))
    timeline = page.locator("#timeline-table tbody")
    assert "segment_enter" in timeline.inner_text()
    timeline.get_by_role("link", name=re.compile(r"segment \d+")).click()
    page.wait_for_url(segment_url)

    page.get_by_role("link", name="Change").click()
    page.wait_for_url(re.compile(r".*/edit$"))
    assert page.get_by_label("Name").input_value() == "Buyers"
    page.get_by_label("Name").fill("Never bought")
    page.get_by_label("Rules (JSON)").fill(NEVER_BOUGHT)
    page.get_by_role("button", name="Save the changes").click()
    page.wait_for_url(segment_url)
    eventually(lambda: built(page, ["bob@example.com"]), "the segment rebuilt with its new member")
    assert page.locator("h1").inner_text() == "Segment Never bought"
    kinds = page.locator("section[aria-labelledby=changes] tbody td:nth-child(2)").all_inner_texts()
    assert sorted(kinds) == ["entered", "entered", "left"]

    page.get_by_role("link", name="Delete").click()
    page.wait_for_url(re.compile(r".*/delete$"))
    assert segments(console, clients) != []  # asking changes nothing
    page.get_by_role("button", name="Yes, delete this segment").click()
    page.wait_for_url(console.account(console.shop, "/segments"))
    assert "Never bought" not in page.content()
    assert segments(console, clients) == []


def test_a_segments_name_is_shown_as_text(
    browser: Browser, console: Console, clients: list[httpx.Client]
) -> None:
    made = api(console, clients).post(
        "/v2/segments", json={"name": SCRIPTED, "rules": {"list": "vip"}}, headers=console.shop.headers
    )
    assert made.status_code == 201, made.text
    segment_id = made.json()["id"]
    try:
        page = sign_in(browser, console, "viewer@example.com")
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(console.account(console.shop, "/segments"))
        assert page.locator("tbody th").filter(has_text=SCRIPTED).count() == 1
        page.goto(console.account(console.shop, f"/segments/{segment_id}"))
        assert page.locator("h1").inner_text() == f"Segment {SCRIPTED}"
        page.wait_for_load_state("networkidle")
        assert dialogs == []
        assert page.get_by_role("link", name="New segment").count() == 0  # a viewer has no forms
        assert page.get_by_role("link", name="Change").count() == 0
    finally:
        api(console, clients).delete(f"/v2/segments/{segment_id}", headers=console.shop.headers)


def test_a_bad_rule_is_refused_naming_its_path_and_saves_nothing(
    console: Console, clients: list[httpx.Client]
) -> None:
    client, csrf = signed_in_client(console, clients, "admin@example.com")
    base = f"/console/accounts/{console.shop.hash}/segments"
    refused = client.post(base, data={"csrf": csrf, "name": "Bad", "rules": BAD})
    assert refused.status_code == 400
    assert "rules.all[0].op" in refused.text and "Invalid enum value" in refused.text
    assert BAD.replace('"', "&#34;") in refused.text  # the form keeps what was typed, escaped
    not_json = client.post(base, data={"csrf": csrf, "name": "Bad", "rules": "{nope"})
    assert not_json.status_code == 400 and "rules: is not JSON" in not_json.text
    counted = client.post(f"{base}/count", data={"name": "x", "rules": BAD}, headers={"X-CSRF-Token": csrf})
    assert counted.status_code == 400 and "rules.all[0].op" in counted.text
    assert segments(console, clients) == []


def test_a_form_without_the_csrf_token_changes_nothing(console: Console, clients: list[httpx.Client]) -> None:
    client, _ = signed_in_client(console, clients, "admin@example.com")
    base = f"/console/accounts/{console.shop.hash}/segments"
    assert client.post(base, data={"name": "Forged", "rules": BUYERS}).status_code == 403
    assert client.post(f"{base}/count", data={"name": "Forged", "rules": BUYERS}).status_code == 403
    assert segments(console, clients) == []


def test_a_viewer_can_neither_create_change_nor_delete(console: Console, clients: list[httpx.Client]) -> None:
    made = api(console, clients).post(
        "/v2/segments", json={"name": "Kept", "rules": {"list": "vip"}}, headers=console.shop.headers
    )
    segment_id = made.json()["id"]
    try:
        client, csrf = signed_in_client(console, clients, "viewer@example.com")
        base = f"/console/accounts/{console.shop.hash}/segments"
        assert client.get(base).status_code == 200
        assert client.get(f"{base}/new").status_code == 403
        assert client.post(base, data={"csrf": csrf, "name": "Sneaky", "rules": BUYERS}).status_code == 403
        one = f"{base}/{segment_id}"
        assert client.post(one, data={"csrf": csrf, "name": "Sneaky", "rules": BUYERS}).status_code == 403
        assert client.post(f"{one}/delete", data={"csrf": csrf, "confirm": "yes"}).status_code == 403
        assert [s["name"] for s in segments(console, clients)] == ["Kept"]
    finally:
        api(console, clients).delete(f"/v2/segments/{segment_id}", headers=console.shop.headers)


def test_another_accounts_segment_is_not_found(console: Console, clients: list[httpx.Client]) -> None:
    [theirs] = segments(console, clients, console.other)
    client, csrf = signed_in_client(console, clients, "admin@example.com")
    mine = f"/console/accounts/{console.shop.hash}/segments/{theirs['id']}"  # in my account: none
    for path in (mine, f"{mine}/edit", f"{mine}/delete"):
        assert client.get(path).status_code == 404, path
    assert client.post(mine, data={"csrf": csrf, "name": "Taken", "rules": BUYERS}).status_code == 404
    assert client.post(f"{mine}/delete", data={"csrf": csrf, "confirm": "yes"}).status_code == 404
    theirs_url = f"/console/accounts/{console.other.hash}/segments"  # their account: not mine to see
    assert client.get(theirs_url).status_code == 404
    assert client.get(f"{theirs_url}/{theirs['id']}").status_code == 404
    made = client.post(theirs_url, data={"csrf": csrf, "name": "Planted", "rules": BUYERS})
    assert made.status_code == 404
    assert [s["name"] for s in segments(console, clients, console.other)] == ["Theirs"]


def test_the_segments_pages_have_no_serious_accessibility_violations(
    browser: Browser, console: Console, clients: list[httpx.Client]
) -> None:
    made = api(console, clients).post(
        "/v2/segments",
        json={"name": "Buyers", "rules": {"field": "stats.orders", "op": "gte", "value": 1}},
        headers=console.shop.headers,
    )
    segment_id = made.json()["id"]
    try:
        page = sign_in(browser, console, "admin@example.com", for_axe=True)
        for path in [
            "/segments",
            "/segments/new",
            f"/segments/{segment_id}",
            f"/segments/{segment_id}/edit",
            f"/segments/{segment_id}/delete",
        ]:
            page.goto(console.account(console.shop, path))
            page.wait_for_load_state("networkidle")
            assert axe(page) == [], path
    finally:
        api(console, clients).delete(f"/v2/segments/{segment_id}", headers=console.shop.headers)
