"""The console's catalogue, lists, email and settings pages in Debian's Chromium through Playwright,
with data pushed through the real API: what each shows, the template preview that never runs a
template's script, API keys created, used and revoked by an admin and refused to a viewer, another
account's pages not found, and axe-core on each page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page

from conftest import eventually, push, set_limits
from support.console import (
    Console,
    axe,
    browser_fixture,
    serving,
    sign_in,
    signed_in_client,
)

SENDER = {"email": "shop@example.com", "name": "Shop"}
SCRIPTED = (
    "<p id='hello'>Hello {{ to.name }}</p><script>alert('template')</script><img src=x onerror=alert(1)>"
)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with serving(tmp_path_factory.mktemp("console-pages")) as served:
        shop = served.shop
        unlimited = [arg for name in ("data", "push", "email") for arg in (f"--{name}", "unlimited")]
        set_limits(served.server.data_dir, shop.hash, *unlimited)
        with served.server.client() as client:
            listing = {"store": "uk-store", "title": "Shirt (UK)", "price": 12.5, "currency": "GBP"}
            push(
                client,
                shop,
                [
                    {
                        "@type": "product",
                        "id": "shirt",
                        "title": "Shirt",
                        "price": 12.5,
                        "listings": [listing],
                    },
                    {
                        "@type": "product",
                        "id": "shirt-red",
                        "title": "Red shirt",
                        "is_variant": True,
                        "parent_id": "shirt",
                    },
                    {"@type": "product", "id": "hat", "title": "Hat"},
                ],
            )
            made = client.post(
                "/v2/lists", json={"id": "vip", "title": "Very important"}, headers=shop.headers
            )
            assert made.status_code == 201, made.text
            push(
                client,
                shop,
                [
                    {
                        "@type": "contact",
                        "@collection": "default",
                        "id": "c1",
                        "email": "ada@example.com",
                        "@add_to_lists": ["vip"],
                    }
                ],
            )
            for body in (
                {
                    "name": "Welcome",
                    "subject": "Hello {{ to.name }}",
                    "html": "<p>Welcome, {{ to.name }}</p>",
                },
                {"name": "Scripted", "subject": "Scripted", "html": SCRIPTED},
            ):
                saved = client.post("/v2/templates", json=body, headers=shop.headers)
                assert saved.status_code == 201, saved.text
            sent = client.post(
                "/v2/transactional-email/send",
                json={
                    "from": SENDER,
                    "to": {"email": "ada@example.com", "name": "Ada"},
                    "template_id": 1,
                    "sandbox": True,
                },
                headers=shop.headers,
            )
            assert sent.status_code == 202, sent.text
        yield served


browser = browser_fixture()


def cells(page: Page, selector: str = "tbody tr") -> list[list[str]]:
    return [row.locator("th, td").all_inner_texts() for row in page.locator(selector).all()]


def test_the_catalogue_shows_a_product_with_its_variant_and_listing(
    browser: Browser, console: Console
) -> None:
    page = sign_in(browser, console, "viewer@example.com")
    page.goto(console.account(console.shop, "/catalogue"))
    assert [row[0] for row in cells(page)] == ["shirt", "shirt-red", "hat"]
    page.get_by_label("Product id starts with").fill("shi")
    page.get_by_role("button", name="Find").click()
    page.wait_for_url(re.compile(r".*q=shi"))
    assert [row[0] for row in cells(page)] == ["shirt", "shirt-red"]
    page.locator("tbody th").get_by_role("link", name="shirt", exact=True).click()
    page.wait_for_url(re.compile(r".*/catalogue/shirt$"))
    variants = page.locator("section[aria-labelledby=variants] tbody tr")
    assert variants.locator("th").all_inner_texts() == ["shirt-red"]
    listing = page.locator("section[aria-labelledby=listings] tbody tr").locator("th, td").all_inner_texts()
    assert listing[:4] == ["uk-store", "Shirt (UK)", "12.5", "GBP"]
    variants.get_by_role("link", name="shirt-red").click()
    page.wait_for_url(re.compile(r".*/catalogue/shirt-red$"))
    assert page.locator(".stats").get_by_role("link", name="shirt").is_visible()  # its parent


def test_the_lists_page_shows_a_list_and_its_member(browser: Browser, console: Console) -> None:
    page = sign_in(browser, console, "viewer@example.com")
    page.goto(console.account(console.shop, "/lists"))
    [row] = cells(page)
    assert row[:3] == ["Very important", "vip", "1"]
    page.get_by_role("link", name="Very important").click()
    page.wait_for_url(re.compile(r".*/lists/vip$"))
    [member] = cells(page, "section[aria-labelledby=members] tbody tr")
    assert member[1] == "ada@example.com"


def test_the_email_page_previews_a_template_and_lists_a_sent_message(
    browser: Browser, console: Console
) -> None:
    page = sign_in(browser, console, "viewer@example.com")
    page.goto(console.account(console.shop, "/email"))
    assert [row[:2] for row in cells(page, "section[aria-labelledby=templates] tbody tr")] == [
        ["1", "Welcome"],
        ["2", "Scripted"],
    ]
    [message] = cells(page, "section[aria-labelledby=outbox] tbody tr")
    assert message[1:5] == ["ada@example.com", "Hello Ada", "sandbox", "0"]
    page.get_by_role("link", name="1", exact=True).click()
    page.wait_for_url(re.compile(r".*/email/templates/1$"))
    assert page.locator("#preview-subject").inner_text() == "Hello Preview"
    assert page.frame_locator("iframe.preview").locator("p").inner_text() == "Welcome, Preview"


def test_a_templates_script_never_runs_in_the_console(browser: Browser, console: Console) -> None:
    page = sign_in(browser, console, "viewer@example.com")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    answer = page.goto(console.account(console.shop, "/email/templates/2"))
    assert answer is not None and "frame-src 'self'" in answer.headers["content-security-policy"]
    assert "<script>alert('template')</script>" in page.locator("#source-html").inner_text()
    frame = page.frame_locator("iframe.preview")
    assert frame.locator("#hello").inner_text() == "Hello Preview"  # rendered, in its own document
    page.wait_for_load_state("networkidle")
    assert dialogs == []
    preview = page.request.get(console.account(console.shop, "/email/templates/2/preview"))
    policy = preview.headers["content-security-policy"]
    assert "sandbox" in policy and "script-src" not in policy and "default-src 'none'" in policy


def test_an_admin_creates_uses_and_revokes_a_key(
    browser: Browser, console: Console, clients: list[httpx.Client]
) -> None:
    page = sign_in(browser, console, "admin@example.com")
    page.goto(console.account(console.shop, "/settings"))
    assert console.shop.hash in page.get_by_label("Put this on every page of the shop").input_value()
    page.get_by_label("Label of a new key").fill("console test")
    page.get_by_role("button", name="Create a key").click()
    key = page.get_by_label("New API key").input_value()
    key_id = page.locator("[role=status] strong").inner_text().split()[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", key) and key_id.startswith("key_")
    page.reload()  # the answer to the form alone showed it
    assert key not in page.content()

    api = console.server.client()
    clients.append(api)
    headers = {"X-Ometria-Auth": key}
    assert api.get("/v2/account", headers=headers).json()["account_hash"] == console.shop.hash

    def last_used() -> str:
        page.goto(console.account(console.shop, "/settings"))
        row = page.locator("tbody tr").filter(has_text=key_id)
        return row.locator(".last-used").inner_text()

    assert eventually(lambda: last_used() != "never", "the key's last use") != "never"
    page.get_by_role("button", name=f"Revoke {key_id}").click()
    page.wait_for_url(console.account(console.shop, "/settings"))
    assert page.get_by_role("button", name=f"Revoke {key_id}").count() == 0
    eventually(lambda: api.get("/v2/account", headers=headers).status_code == 403, "the revoked key refused")


def test_a_viewer_can_neither_create_nor_revoke_a_key(console: Console, clients: list[httpx.Client]) -> None:
    client, csrf = signed_in_client(console, clients, "viewer@example.com")
    settings = f"/console/accounts/{console.shop.hash}/settings"
    before = client.get(settings)
    assert before.status_code == 200 and "Create a key" not in before.text
    ids = sorted(set(re.findall(r"<code>(key_[0-9a-f]+)</code>", before.text)))
    assert ids
    refused = client.post(f"{settings}/keys", data={"csrf": csrf, "label": "sneaky"})
    assert refused.status_code == 403
    assert client.post(f"{settings}/keys/{ids[0]}/revoke", data={"csrf": csrf}).status_code == 403
    after = client.get(settings).text
    assert sorted(set(re.findall(r"<code>(key_[0-9a-f]+)</code>", after))) == ids
    assert "sneaky" not in after
    shop = console.server.client()
    clients.append(shop)
    assert shop.get("/v2/account", headers=console.shop.headers).status_code == 200


def test_a_form_without_the_csrf_token_creates_no_key(console: Console, clients: list[httpx.Client]) -> None:
    client, _ = signed_in_client(console, clients, "admin@example.com")
    settings = f"/console/accounts/{console.shop.hash}/settings"
    assert client.post(f"{settings}/keys", data={"label": "forged"}).status_code == 403
    assert "forged" not in client.get(settings).text


@pytest.mark.parametrize(
    "path",
    [
        "/catalogue",
        "/catalogue/shirt",
        "/lists",
        "/lists/vip",
        "/segments",
        "/webhooks",
        "/email",
        "/email/templates/1",
        "/email/templates/1/preview",
        "/settings",
    ],
)
def test_another_accounts_operator_gets_not_found(
    console: Console, clients: list[httpx.Client], path: str
) -> None:
    client, csrf = signed_in_client(console, clients, "other@example.com")
    assert client.get(f"/console/accounts/{console.shop.hash}{path}").status_code == 404
    if path == "/settings":
        keys = f"/console/accounts/{console.shop.hash}/settings/keys"
        assert client.post(keys, data={"csrf": csrf, "label": "x"}).status_code == 404


def test_the_pages_have_no_serious_accessibility_violations(browser: Browser, console: Console) -> None:
    page = sign_in(browser, console, "admin@example.com", for_axe=True)
    for path in [
        "/catalogue",
        "/catalogue/shirt",
        "/lists",
        "/lists/vip",
        "/segments",
        "/webhooks",
        "/email",
        "/email/templates/1",
        "/settings",
    ]:
        page.goto(console.account(console.shop, path))
        page.wait_for_load_state("networkidle")
        assert axe(page) == [], path
