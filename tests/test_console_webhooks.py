"""The console's webhooks pages in Debian's Chromium through Playwright, on both stores, with a real
local HTTPS receiver: an admin adds an endpoint and sees its secret once, the events of a push are
delivered signed with it and shown in the delivery log, a time range is replayed, the endpoint is
disabled, enabled and deleted (confirmed); a private address, a form without the CSRF token, a
viewer and another account's operator change nothing; axe-core checks every page."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from conftest import Tenant, eventually, push, set_limits
from support.console import (
    Console,
    api,
    axe,
    browser_fixture,
    serving,
    sign_in,
    signed_in_client,
)
from support.receiver import Receiver, receiver

SCRIPTED = "<script>alert('hook')</script>"


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    with receiver(tmp_path_factory.mktemp("receiver")) as found:
        yield found


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, new_database_url: Callable[[], str | None], hooks: Receiver
) -> Iterator[Console]:
    url = new_database_url()
    environment = {
        "PATRON_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8,::1/128",  # (localhost may resolve to both)
        "PATRON_WEBHOOK_CA": str(hooks.ca),
        "PATRON_WEBHOOK_BACKOFF": "0.2",
        **({} if url is None else {"PATRON_DATABASE_URL": url}),
    }
    with serving(tmp_path_factory.mktemp("console-webhooks"), environment) as served:
        unlimited = ["--data", "unlimited", "--push", "unlimited"]
        set_limits(served.server.data_dir, served.shop.hash, *unlimited, environment=environment)
        yield served


browser = browser_fixture()


def endpoints(
    console: Console, clients: list[httpx.Client], tenant: Tenant | None = None
) -> list[dict[str, Any]]:
    """The account's endpoints as ``GET /v2/webhooks`` gives them."""
    answer = api(console, clients).get("/v2/webhooks", headers=(tenant or console.shop).headers)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def made_endpoint(
    console: Console, clients: list[httpx.Client], hooks: Receiver, tenant: Tenant, path: str
) -> str:
    body = {"url": hooks.url(path), "event_types": ["profile.created"], "description": SCRIPTED}
    made = api(console, clients).post("/v2/webhooks", json=body, headers=tenant.headers)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def log_rows(page: Page) -> list[list[str]]:
    rows = page.locator("section[aria-labelledby=deliveries] tbody tr").all()
    return [row.locator("td").all_inner_texts() for row in rows]


def moment(at: datetime) -> str:
    """A ``datetime-local`` input's value (UTC)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_an_admin_adds_an_endpoint_sees_deliveries_replays_and_deletes_it(
    browser: Browser, console: Console, hooks: Receiver, clients: list[httpx.Client]
) -> None:
    flow = f"/console-flow-{console.shop.hash}"  # (the receiver serves both stores' runs)
    page = sign_in(browser, console, "admin@example.com")
    page.goto(console.account(console.shop, "/webhooks"))
    page.get_by_label("URL (https://)").fill(hooks.url(flow))
    page.get_by_label("Description").fill(SCRIPTED)
    page.get_by_label("profile.created").check()
    page.get_by_label("order.applied").check()
    page.get_by_role("button", name="Add the endpoint").click()
    page.wait_for_url(console.account(console.shop, "/webhooks"))  # the answer to the form
    secret = page.get_by_label("Signing secret").input_value()
    assert secret.startswith("whsec_")
    [made] = endpoints(console, clients)
    assert made["event_types"] == ["profile.created", "order.applied"] and made["description"] == SCRIPTED
    page.goto(console.account(console.shop, f"/webhooks/{made['id']}"))  # shown once, never again
    assert secret not in page.content() and page.get_by_label("Signing secret").count() == 0
    assert page.locator("main").get_by_text(SCRIPTED).count() == 1  # as text

    started = datetime.now(UTC) - timedelta(seconds=1)
    with console.server.client() as client:
        push(client, console.shop, [{"@type": "contact", "id": "c-hook", "email": "hook@example.com"}])
    [delivered] = eventually(lambda: hooks.delivered(flow), "the event delivered")
    payload = delivered.verified(secret)  # signed with the secret the page showed
    assert payload["type"] == "profile.created"
    webhook_id = delivered.headers["webhook-id"]

    def logged() -> list[list[str]]:
        page.reload()
        return log_rows(page)

    [row] = eventually(logged, "the attempt in the delivery log")
    assert row[1:5] == ["profile.created", webhook_id, "delivered", "200"]

    page.get_by_label("From (UTC)").fill(moment(started))
    page.get_by_label("Until (UTC, not included)").fill(moment(datetime.now(UTC) + timedelta(minutes=1)))
    page.get_by_role("button", name="Replay these events").click()
    assert page.get_by_role("status").filter(has_text="delivered again").inner_text() == (
        "1 event is delivered again."
    )
    eventually(lambda: len(hooks.delivered(flow)) == 2, "the event delivered again")
    assert [r.headers["webhook-id"] for r in hooks.delivered(flow)] == [webhook_id, webhook_id]
    eventually(lambda: len(logged()) == 2, "the replay's attempt in the log")

    page.get_by_role("button", name="Disable the endpoint").click()
    page.wait_for_url(re.compile(r".*\?done=disabled$"))
    assert page.locator("#state").inner_text() == "disabled"
    assert "disabled by an operator" in page.content()
    page.goto(console.account(console.shop, "/webhooks"))
    assert page.locator("td.state").inner_text().startswith("disabled: disabled by an operator")
    page.goto(console.account(console.shop, f"/webhooks/{made['id']}"))
    page.get_by_role("button", name="Enable the endpoint").click()
    page.wait_for_url(re.compile(r".*\?done=enabled$"))
    assert page.locator("#state").inner_text() == "enabled"

    page.get_by_role("link", name="Delete").click()
    page.wait_for_url(re.compile(r".*/delete$"))
    assert len(endpoints(console, clients)) == 1  # asking changes nothing
    page.get_by_role("button", name="Yes, delete this endpoint").click()
    page.wait_for_url(console.account(console.shop, "/webhooks"))
    assert endpoints(console, clients) == []


def test_a_private_address_or_a_bad_field_is_refused_and_adds_nothing(
    console: Console, clients: list[httpx.Client]
) -> None:
    client, csrf = signed_in_client(console, clients, "admin@example.com")
    base = f"/console/accounts/{console.shop.hash}/webhooks"
    private = client.post(
        base, data={"csrf": csrf, "url": "https://10.1.2.3/hook", "event_types": "order.applied"}
    )
    assert private.status_code == 400 and "root &gt; url" in private.text
    assert "https://10.1.2.3/hook" in private.text  # the form keeps what was typed
    plain = client.post(
        base, data={"csrf": csrf, "url": "http://example.com/hook", "event_types": "order.applied"}
    )
    assert plain.status_code == 400 and "root &gt; url" in plain.text
    none = client.post(base, data={"csrf": csrf, "url": "https://example.com/hook"})
    assert none.status_code == 400 and "root &gt; event_types" in none.text
    unknown = client.post(base, data={"csrf": csrf, "url": "https://example.com/hook", "event_types": "nope"})
    assert unknown.status_code == 400 and "root &gt; event_types &gt; 0" in unknown.text
    assert endpoints(console, clients) == []


def test_a_bad_replay_range_is_refused_naming_the_field(
    console: Console, hooks: Receiver, clients: list[httpx.Client]
) -> None:
    endpoint = made_endpoint(console, clients, hooks, console.shop, "/console-range")
    try:
        client, csrf = signed_in_client(console, clients, "admin@example.com")
        replay = f"/console/accounts/{console.shop.hash}/webhooks/{endpoint}/replay"
        backwards = {"csrf": csrf, "since": "2030-01-01T00:00", "until": "2020-01-01T00:00"}
        answer = client.post(replay, data=backwards)
        assert answer.status_code == 400 and "until: must be after since" in answer.text
        garbled = client.post(replay, data={"csrf": csrf, "since": "yesterday", "until": "2020-01-01T00:00"})
        assert garbled.status_code == 400 and "since: is not a date and time" in garbled.text
    finally:
        api(console, clients).delete(f"/v2/webhooks/{endpoint}", headers=console.shop.headers)


def test_a_form_without_the_csrf_token_changes_nothing(
    console: Console, hooks: Receiver, clients: list[httpx.Client]
) -> None:
    endpoint = made_endpoint(console, clients, hooks, console.shop, "/console-csrf")
    try:
        client, _ = signed_in_client(console, clients, "admin@example.com")
        base = f"/console/accounts/{console.shop.hash}/webhooks"
        forged = client.post(base, data={"url": hooks.url("/forged"), "event_types": "order.applied"})
        assert forged.status_code == 403
        assert client.post(f"{base}/{endpoint}/disable").status_code == 403
        assert client.post(f"{base}/{endpoint}/delete", data={"confirm": "yes"}).status_code == 403
        [kept] = endpoints(console, clients)
        assert kept["id"] == endpoint and kept["enabled"]
    finally:
        api(console, clients).delete(f"/v2/webhooks/{endpoint}", headers=console.shop.headers)


def test_a_viewer_sees_endpoints_but_changes_nothing(
    console: Console, hooks: Receiver, clients: list[httpx.Client]
) -> None:
    endpoint = made_endpoint(console, clients, hooks, console.shop, "/console-viewer")
    try:
        client, csrf = signed_in_client(console, clients, "viewer@example.com")
        base = f"/console/accounts/{console.shop.hash}/webhooks"
        listed = client.get(base)
        assert listed.status_code == 200 and endpoint in listed.text and "Add the endpoint" not in listed.text
        one = client.get(f"{base}/{endpoint}")
        assert one.status_code == 200 and "Disable the endpoint" not in one.text and "Replay" not in one.text
        data = {"csrf": csrf, "url": hooks.url("/sneaky"), "event_types": "order.applied"}
        assert client.post(base, data=data).status_code == 403
        assert client.post(f"{base}/{endpoint}/disable", data={"csrf": csrf}).status_code == 403
        replay = {"csrf": csrf, "since": "2020-01-01T00:00", "until": "2030-01-01T00:00"}
        assert client.post(f"{base}/{endpoint}/replay", data=replay).status_code == 403
        assert client.get(f"{base}/{endpoint}/delete").status_code == 403
        assert (
            client.post(f"{base}/{endpoint}/delete", data={"csrf": csrf, "confirm": "yes"}).status_code == 403
        )
        [kept] = endpoints(console, clients)
        assert kept["id"] == endpoint and kept["enabled"]
    finally:
        api(console, clients).delete(f"/v2/webhooks/{endpoint}", headers=console.shop.headers)


def test_another_accounts_endpoint_is_not_found(
    console: Console, hooks: Receiver, clients: list[httpx.Client]
) -> None:
    theirs = made_endpoint(console, clients, hooks, console.other, "/console-theirs")
    try:
        client, csrf = signed_in_client(console, clients, "admin@example.com")
        mine = f"/console/accounts/{console.shop.hash}/webhooks/{theirs}"  # in my account: none
        assert client.get(mine).status_code == 404
        assert client.get(f"{mine}/delete").status_code == 404
        assert client.post(f"{mine}/disable", data={"csrf": csrf}).status_code == 404
        assert client.post(f"{mine}/delete", data={"csrf": csrf, "confirm": "yes"}).status_code == 404
        replay = {"csrf": csrf, "since": "2020-01-01T00:00", "until": "2030-01-01T00:00"}
        assert client.post(f"{mine}/replay", data=replay).status_code == 404
        their_pages = f"/console/accounts/{console.other.hash}/webhooks"  # their account: not mine to see
        assert client.get(their_pages).status_code == 404
        assert client.get(f"{their_pages}/{theirs}").status_code == 404
        [kept] = endpoints(console, clients, console.other)
        assert kept["id"] == theirs and kept["enabled"]
    finally:
        api(console, clients).delete(f"/v2/webhooks/{theirs}", headers=console.other.headers)


def test_the_webhooks_pages_have_no_serious_accessibility_violations(
    browser: Browser, console: Console, hooks: Receiver, clients: list[httpx.Client]
) -> None:
    endpoint = made_endpoint(console, clients, hooks, console.shop, "/console-axe")
    try:
        page = sign_in(browser, console, "admin@example.com", for_axe=True)
        for path in ["/webhooks", f"/webhooks/{endpoint}", f"/webhooks/{endpoint}/delete"]:
            page.goto(console.account(console.shop, path))
            page.wait_for_load_state("networkidle")
            assert axe(page) == [], path
    finally:
        api(console, clients).delete(f"/v2/webhooks/{endpoint}", headers=console.shop.headers)
