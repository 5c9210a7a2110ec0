"""The console's Imports and Live pages in Chromium: push requests filtered by type and outcome, a
request's records, errors and stored entities, the live tail of an account (pause, filters), another
account's pages not found, and axe-core's check."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from conftest import push
from support.console import Console, axe, browser_fixture, serving, sign_in


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with serving(tmp_path_factory.mktemp("console-imports")) as served:
        with served.server.client() as client:
            push(client, served.shop, [{"@type": "product", "id": "p-1", "title": "Shirt", "price": 10}])
        yield served


browser = browser_fixture()


def push_to(console: Console, records: list[dict[str, Any]], wait: bool = True) -> dict[str, Any]:
    with console.server.client() as client:
        return push(client, console.shop, records, wait=wait)


def contacts_with_a_reject(console: Console) -> dict[str, Any]:
    reply = push_to(
        console,
        [
            {"@type": "contact", "id": "c-good", "email": "good@example.com"},
            {"@type": "contact", "id": "c-bad", "email": "good@example.com", "marketing_optin": "perhaps"},
        ],
    )
    assert reply["accepted"] == 1 and reply["rejected"] == 1, reply
    return reply


def test_a_push_with_a_rejected_record_is_listed_and_its_page_shows_the_error_path(
    browser: Browser, console: Console
) -> None:
    reply = contacts_with_a_reject(console)
    page = sign_in(browser, console, "viewer@example.com")
    page.goto(console.account(console.shop, "/imports"))
    page.get_by_label("Type").select_option("contact")
    page.get_by_label("Outcome").select_option("rejects")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*type=contact&outcome=rejects"))
    rows = page.locator("tbody tr")
    assert rows.count() == 1
    assert rows.locator("td").first.inner_text() == "contact"
    page.get_by_label("Type").select_option("product")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*type=product&outcome=rejects"))
    assert page.locator("tbody tr").count() == 0  # the product push had no reject
    page.get_by_label("Outcome").select_option("applied")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*type=product&outcome=applied"))
    assert page.locator("tbody tr").count() == 1

    page.goto(console.account(console.shop, "/imports?type=contact&outcome=rejects"))
    page.get_by_role("link", name=reply["request_id"]).click()
    page.wait_for_url(re.compile(f".*/imports/{reply['request_id']}$"))
    error = page.locator("#errors + table tbody tr")
    assert error.count() == 1
    assert error.locator("code.path").inner_text() == reply["errors"][0]["error_path"]
    assert "c-bad" in error.inner_text()
    records = page.locator("article.record")
    assert records.count() == 1
    assert '"c-good"' in records.locator("pre").inner_text()
    profile = records.get_by_role("link", name="Its customer's profile")
    assert re.search(r"/customers/[0-9a-f-]+$", profile.get_attribute("href") or "")


def test_a_request_page_links_a_product_to_the_catalogue(browser: Browser, console: Console) -> None:
    reply = push_to(console, [{"@type": "product", "id": "p-linked", "title": "Cap", "price": 5}])
    page = sign_in(browser, console, "viewer@example.com")
    page.goto(console.account(console.shop, f"/imports/{reply['request_id']}"))
    link = page.get_by_role("link", name="The product in the catalogue")
    assert (link.get_attribute("href") or "").endswith("/catalogue/p-linked")
    assert page.locator("#errors ~ p").first.inner_text() == "None."


def live_page(browser: Browser, console: Console) -> Page:
    page = sign_in(browser, console, "admin@example.com")
    page.goto(console.account(console.shop, "/live"))
    expect(page.get_by_role("status")).to_have_text("Live")
    return page


def line(page: Page, text: str) -> Any:
    return page.locator("#lines li", has_text=text)


def test_the_live_page_shows_a_push_made_while_it_is_open(browser: Browser, console: Console) -> None:
    page = live_page(browser, console)
    reply = push_to(console, [{"@type": "contact", "id": "live-1", "email": "live1@example.com"}])
    pushed = line(page, "live-1").filter(has_text="Push of 1 contact")
    expect(pushed).to_have_count(1)
    assert (pushed.get_by_role("link").first.get_attribute("href") or "").endswith(
        f"/imports/{reply['request_id']}"
    )
    expect(page.locator("#lines li.applied", has_text="live-1")).to_have_count(1)
    rejected = contacts_with_a_reject(console)
    expect(page.locator("#lines li.rejected", has_text="c-bad")).to_have_count(1)
    assert rejected["errors"][0]["error_path"] in page.locator("#lines li.rejected").first.inner_text()
    texts = page.locator("#lines li").all_inner_texts()  # newest first
    newer = next(i for i, t in enumerate(texts) if "c-bad" in t)
    older = next(i for i, t in enumerate(texts) if "live-1" in t and "Push of" in t)
    assert newer < older


def test_pause_holds_new_lines_back_until_resumed(browser: Browser, console: Console) -> None:
    page = live_page(browser, console)
    page.get_by_role("button", name="Pause").click()
    push_to(console, [{"@type": "contact", "id": "held-1", "email": "held@example.com"}], wait=False)
    expect(page.get_by_role("status")).to_contain_text("held back")
    expect(line(page, "held-1")).to_have_count(0)
    page.get_by_role("button", name="Resume").click()
    expect(line(page, "held-1").first).to_be_visible()


def test_the_filters_hide_the_other_lines(browser: Browser, console: Console) -> None:
    page = live_page(browser, console)
    push_to(console, [{"@type": "contact", "id": "f-one", "email": "one@example.com"}])
    push_to(console, [{"@type": "product", "id": "f-two", "title": "Two", "price": 2}])
    expect(line(page, "f-two").filter(has_text="Push of")).to_have_count(1)
    expect(line(page, "f-one").filter(has_text="Push of")).to_have_count(1)
    page.get_by_label("Identity contains").fill("f-one")
    expect(line(page, "f-two").first).to_be_hidden()
    expect(line(page, "f-one").first).to_be_visible()
    page.get_by_label("Identity contains").fill("")
    page.get_by_label("Type").select_option("applied")
    expect(line(page, "f-two").filter(has_text="Push of")).to_be_hidden()
    expect(page.locator("#lines li.applied", has_text="f-two")).to_be_visible()


def test_another_accounts_imports_and_live_are_not_found(browser: Browser, console: Console) -> None:
    reply = contacts_with_a_reject(console)
    page = sign_in(browser, console, "other@example.com")
    for path in ["/imports", f"/imports/{reply['request_id']}", "/live", "/live/events"]:
        answer = page.goto(console.account(console.shop, path))
        assert answer is not None and answer.status == 404, path
    # and the other account's own request page does not show the shop's request
    answer = page.goto(console.account(console.other, f"/imports/{reply['request_id']}"))
    assert answer is not None and answer.status == 404


def test_the_pages_have_no_serious_accessibility_violations(browser: Browser, console: Console) -> None:
    reply = contacts_with_a_reject(console)
    page = sign_in(browser, console, "viewer@example.com", for_axe=True)
    for path in [
        "/imports",
        "/imports?type=contact&outcome=rejects",
        f"/imports/{reply['request_id']}",
        "/live",
    ]:
        page.goto(console.account(console.shop, path))
        if path == "/live":
            expect(page.get_by_role("status")).to_have_text("Live")
            push_to(console, [{"@type": "contact", "id": "axe-1", "email": "axe@example.com"}])
            expect(line(page, "axe-1").first).to_be_visible()
        if path.startswith("/imports/"):  # among the account's earlier errors, this request's only
            assert page.locator("#errors + table tbody tr").all_inner_texts()[0].startswith("#1")
            assert page.locator("#errors + table tbody tr").count() == 1
        assert axe(page) == [], path
    page.context.close()
