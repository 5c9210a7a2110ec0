"""The console (/console) in Debian's Chromium through Playwright, and its operators through the CLI:
signing in, what each operator may see, the dashboard's integration check, CSRF, escaping, the
security headers and an accessibility check with axe-core."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from conftest import push, run_cli
from support.console import (
    PASSWORD,
    Console,
    axe,
    browser_fixture,
    create_operator,
    serving,
    sign_in,
)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with serving(tmp_path_factory.mktemp("console")) as served:
        with served.server.client() as client:
            push(client, served.shop, [{"@type": "product", "id": "p-1", "title": "Shirt", "price": 10}])
            listing = {"store": "<script>alert('x')</script>", "price": 9}
            push(
                client,
                served.shop,
                [{"@type": "product", "id": "p-2", "title": "Hat", "listings": [listing]}],
            )
        yield served


browser = browser_fixture()


@pytest.fixture
def clients(console: Console) -> Iterator[list[httpx.Client]]:
    """The test's HTTP clients, closed after it."""
    made: list[httpx.Client] = []
    yield made
    for client in made:
        client.close()


def http(console: Console, clients: list[httpx.Client]) -> httpx.Client:
    client = console.server.client(follow_redirects=False)
    clients.append(client)
    return client


def signed_in_client(console: Console, clients: list[httpx.Client], email: str) -> tuple[httpx.Client, str]:
    """An HTTP client with a session cookie, and the session's CSRF token (read from a page)."""
    client = http(console, clients)
    answer = client.post("/console/sign-in", data={"email": email, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    page = client.get("/console/")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return client, found.group(1)


def test_an_operator_signs_in_and_sees_the_granted_accounts_only(browser: Browser, console: Console) -> None:
    page = sign_in(browser, console, "admin@example.com")
    rows = page.locator("tbody th").all_inner_texts()
    assert len(rows) == 1 and rows[0].startswith("Shop")
    owner = sign_in(browser, console, "owner@example.com")
    assert sorted(r.split(" ")[0] for r in owner.locator("tbody th").all_inner_texts()) == ["Other", "Shop"]


def test_a_page_without_a_session_leads_to_the_sign_in(browser: Browser, console: Console) -> None:
    page = browser.new_context(ignore_https_errors=True).new_page()
    page.goto(console.account(console.shop))
    assert page.url == f"{console.url}/sign-in"


def test_another_accounts_url_is_not_found(browser: Browser, console: Console) -> None:
    page = sign_in(browser, console, "admin@example.com")
    answer = page.goto(console.account(console.other))
    assert answer is not None and answer.status == 404
    assert page.get_by_role("alert").inner_text().startswith("no account")
    assert page.goto(console.account(console.shop, "/report/orders.no_customer")).status == 200  # type: ignore[union-attr]


def test_a_wrong_password_is_refused_and_repeated_failures_lock(
    browser: Browser, console: Console, clients: list[httpx.Client]
) -> None:
    create_operator(console.server.data_dir, "locked@example.com", "viewer", console.shop.hash)
    client = http(console, clients)
    for _ in range(5):
        answer = client.post(
            "/console/sign-in", data={"email": "locked@example.com", "password": "wrong" * 3}
        )
        assert answer.status_code == 403 and "cookie" not in answer.headers.get("set-cookie", "x")
    right = client.post("/console/sign-in", data={"email": "locked@example.com", "password": PASSWORD})
    assert right.status_code == 403  # locked for a while, even with the right password
    run_cli(
        console.server.data_dir,
        "operators",
        "reset-password",
        "--email",
        "locked@example.com",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    again = client.post("/console/sign-in", data={"email": "locked@example.com", "password": PASSWORD})
    assert again.status_code == 303  # a reset lifts the lock


def test_the_dashboard_shows_the_integration_check_and_its_samples(
    browser: Browser, console: Console
) -> None:
    page = sign_in(browser, console, "viewer@example.com")
    page.goto(console.account(console.shop))
    verdict = page.locator(".verdict")
    verdict.wait_for()
    assert verdict.inner_text().startswith("Not ready")
    page.get_by_role("link", name="products.missing_fields").click()
    page.wait_for_url(re.compile(r".*/report/products.missing_fields$"))
    assert page.locator("tbody th").all_inner_texts() == ["p-1", "p-2"]


def test_values_are_shown_as_text(browser: Browser, console: Console) -> None:
    page = sign_in(browser, console, "viewer@example.com")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(console.account(console.shop, "/report/products.listing_without_currency"))
    assert "<script>alert('x')</script>" in page.locator("tbody td").inner_text()
    assert dialogs == []


def test_a_form_without_its_csrf_token_changes_nothing(console: Console, clients: list[httpx.Client]) -> None:
    client, csrf = signed_in_client(console, clients, "viewer@example.com")
    refused = client.post("/console/sign-out", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert client.get("/console/").status_code == 200  # still signed in
    elsewhere = client.post("/console/sign-out", data={}, headers={"Origin": "https://evil.example"})
    assert elsewhere.status_code == 403
    signed_out = client.post("/console/sign-out", data={"csrf": csrf})
    assert signed_out.status_code == 303
    assert client.get("/console/").status_code == 303  # the session ended


def test_every_console_page_sends_the_security_headers(console: Console, clients: list[httpx.Client]) -> None:
    client, _ = signed_in_client(console, clients, "owner@example.com")
    for path in [
        "/console/sign-in",
        "/console/",
        f"/console/accounts/{console.shop.hash}",
        f"/console/accounts/{console.shop.hash}/report",
        f"/console/accounts/{console.shop.hash}/segments",
        f"/console/accounts/{console.shop.hash}/segments/new",
        f"/console/accounts/{console.shop.hash}/webhooks",
    ]:
        answer = client.get(path)
        assert answer.status_code == 200, path
        policy = answer.headers["content-security-policy"]
        assert (
            "script-src 'self'" in policy
            and "unsafe-inline" not in policy
            and "frame-ancestors 'none'" in policy
        )
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"


def test_the_session_cookie_is_http_only_secure_and_strict(
    console: Console, clients: list[httpx.Client]
) -> None:
    answer = http(console, clients).post(
        "/console/sign-in", data={"email": "viewer@example.com", "password": PASSWORD}
    )
    cookie = answer.headers["set-cookie"].lower()
    assert (
        "httponly" in cookie
        and "secure" in cookie
        and "samesite=strict" in cookie
        and "path=/console" in cookie
    )


def test_the_pages_have_no_serious_accessibility_violations(browser: Browser, console: Console) -> None:
    context = browser.new_context(ignore_https_errors=True, bypass_csp=True)  # to inject axe-core
    page = context.new_page()
    page.goto(f"{console.url}/sign-in")
    assert axe(page) == []
    page.get_by_label("Email").fill("owner@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console.url}/")
    for url in [
        f"{console.url}/",
        console.account(console.shop),
        console.account(console.shop, "/report/products.missing_fields"),
    ]:
        page.goto(url)
        page.wait_for_load_state("networkidle")
        assert axe(page) == [], url


def test_operators_are_listed_and_disabled_through_the_cli(
    console: Console, clients: list[httpx.Client], tmp_path: Path
) -> None:
    data_dir = console.server.data_dir
    create_operator(data_dir, "gone@example.com", "viewer", console.shop.hash)
    client, _ = signed_in_client(console, clients, "gone@example.com")
    listed = json.loads(run_cli(data_dir, "operators", "list", "--json").stdout)
    assert {"email": "gone@example.com", "role": "viewer", "disabled": False}.items() <= next(
        o for o in listed if o["email"] == "gone@example.com"
    ).items()
    run_cli(data_dir, "operators", "disable", "--email", "gone@example.com")
    assert client.get("/console/").status_code == 303  # the session ended with the operator
    refused = run_cli(
        data_dir,
        "operators",
        "create",
        "--email",
        "bad",
        "--role",
        "viewer",
        "--password-stdin",
        check=False,
        stdin=PASSWORD + "\n",
    )
    assert refused.returncode != 0 and "email" in refused.stderr
    short = run_cli(
        data_dir,
        "operators",
        "create",
        "--email",
        "s@example.com",
        "--role",
        "viewer",
        "--password-stdin",
        check=False,
        stdin="short\n",
    )
    assert short.returncode != 0 and "password" in short.stderr


def test_a_password_made_up_by_the_cli_is_shown_once_and_works(
    console: Console, clients: list[httpx.Client]
) -> None:
    made = run_cli(
        console.server.data_dir, "operators", "create", "--email", "new@example.com", "--role", "viewer"
    )
    password = next(
        line.split(": ", 1)[1] for line in made.stdout.splitlines() if line.startswith("password:")
    )
    answer = http(console, clients).post(
        "/console/sign-in", data={"email": "new@example.com", "password": password}
    )
    assert answer.status_code == 303
    listed = run_cli(console.server.data_dir, "operators", "list").stdout
    assert "new@example.com" in listed and password not in listed
