"""The dashboard's charts: their numbers (GET /console/accounts/{hash}/charts) for data pushed through
the API and sent by the tag, drawn with uPlot in Debian's Chromium (a canvas per chart, no console
errors, no Content-Security-Policy violations), their tables, axe-core, and the README's screenshot."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from conftest import Tenant, eventually, push
from patron.tracking import wire
from support.console import PASSWORD, Console, axe, browser_fixture, serving, sign_in

SCREENSHOT = Path(__file__).parent.parent / "docs" / "console.png"
NOW = datetime.now(UTC)
THREE_DAYS_AGO = (NOW - timedelta(days=3)).replace(hour=12, minute=0, second=0, microsecond=0)
TWO_DAYS_AGO = THREE_DAYS_AGO + timedelta(days=1)
SOURCES = {
    "www.google.com|shoes|||||20000": "organic",
    "news.example|spring|email|sale|newsletter|hero|20001": "email",
    "|||||": "direct",
}


def order(order_id: str, at: datetime, total: float, **fields: Any) -> dict[str, Any]:
    return {
        "@type": "order",
        "id": order_id,
        "timestamp": at.isoformat(),
        "grand_total": total,
        "currency": "GBP",
        **fields,
    }


def beacon(client: httpx.Client, tenant: Tenant, n: int, src: str) -> None:
    """A page view of a new visitor's session begun from ``src``, as the tag sends it."""
    event = {
        "cid": f"visitor{n:09d}",
        "sid": f"session{n:09d}",
        "src": src,
        "type": "pageview",
        "channel": "system",
        "d": {"type": "homepage"},
        "url": "https://shop.example/",
    }
    answer = client.get(
        f"/track/v3/{tenant.hash}/event.gif", params={"data": wire.encode(event), "rnd": "a1b2c3"}
    )
    assert answer.status_code == 200


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with serving(tmp_path_factory.mktemp("charts")) as served:
        with served.server.client() as client:
            records = [
                order("o-1", THREE_DAYS_AGO, 10),
                order("o-2", THREE_DAYS_AGO + timedelta(hours=3), 15.5),
                order("o-3", TWO_DAYS_AGO, 7),
                order("o-4", TWO_DAYS_AGO, 100, status="cancelled"),  # not counted
                order("o-5", NOW - timedelta(days=200), 1000),  # before the chart's 90 days
                {"@type": "order", "timestamp": NOW.isoformat()},  # no id: rejected
            ]
            reply = push(client, served.shop, records)
            assert (reply["accepted"], reply["rejected"]) == (5, 1), reply
            contacts = [
                {"@type": "contact", "id": f"c-{n}", "email": f"person{n}@example.com"} for n in range(3)
            ]
            push(client, served.shop, contacts)
            for n, src in enumerate(SOURCES):
                beacon(client, served.shop, n, src)
        yield served


browser = browser_fixture()


@pytest.fixture
def http(console: Console) -> Iterator[httpx.Client]:
    """An HTTP client signed in as the Shop's viewer."""
    with console.server.client(follow_redirects=False) as client:
        answer = client.post("/console/sign-in", data={"email": "viewer@example.com", "password": PASSWORD})
        assert answer.status_code == 303, answer.text
        yield client


def by_name(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {chart["name"]: chart for chart in found["charts"]}


def values(chart: dict[str, Any]) -> dict[str, list[float]]:
    return {series["label"]: series["values"] for series in chart["series"]}


def day(chart: dict[str, Any], moment: datetime) -> int:
    """The index of ``moment``'s day among the chart's starts."""
    start = int(moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
    index: int = chart["starts"].index(start)
    return index


def test_the_chart_data_counts_what_was_pushed_and_tracked(console: Console, http: httpx.Client) -> None:
    path = f"/console/accounts/{console.shop.hash}/charts"

    def sessions_counted() -> dict[str, dict[str, Any]] | None:
        answer = http.get(path)
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
        charts = by_name(answer.json())
        total = sum(sum(s["values"]) for s in charts["sessions"]["series"])
        return charts if total == len(SOURCES) else None

    charts = eventually(sessions_counted, "the tag's sessions")
    assert list(charts) == ["records", "orders", "profiles", "sessions"]

    records = charts["records"]
    assert records["step"] == "hour" and len(records["starts"]) == 7 * 24
    assert all(b - a == 3600 for a, b in zip(records["starts"], records["starts"][1:], strict=False))
    pushed = values(records)
    assert (sum(pushed["Accepted"]), sum(pushed["Rejected"])) == (5 + 3, 1)

    orders = charts["orders"]
    assert orders["step"] == "day" and len(orders["starts"]) == 90
    placed = values(orders)
    first, second = day(orders, THREE_DAYS_AGO), day(orders, TWO_DAYS_AGO)
    assert (placed["Orders"][first], placed["Revenue"][first]) == (2, 25.5)
    assert (placed["Orders"][second], placed["Revenue"][second]) == (1, 7)  # the cancelled one is not
    assert (sum(placed["Orders"]), sum(placed["Revenue"])) == (3, 32.5)  # nor the one of 200 days ago

    profiles = charts["profiles"]
    created = values(profiles)["New profiles"]
    assert sum(created) == 3 and created[-1] in (0, 3)  # today's, unless midnight passed since

    sessions = values(charts["sessions"])
    assert sorted(sessions) == sorted(SOURCES.values())
    assert all(sum(counts) == 1 for counts in sessions.values())


def test_another_accounts_chart_data_is_not_found(console: Console, http: httpx.Client) -> None:
    assert http.get(f"/console/accounts/{console.other.hash}/charts").status_code == 404
    with console.server.client(follow_redirects=False) as anonymous:
        answer = anonymous.get(f"/console/accounts/{console.shop.hash}/charts")
        assert answer.status_code == 303 and answer.headers["location"].endswith("/console/sign-in")


def watched(page: Page) -> list[str]:
    """The page's console errors; its documents keep their Content-Security-Policy violations in
    ``window.violations``."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(
        "window.violations = []; document.addEventListener('securitypolicyviolation', (e) =>"
        " window.violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));"
    )
    return errors


def drawn_dashboard(page: Page, console: Console) -> None:
    page.goto(console.account(console.shop))
    page.locator('[data-charts][data-drawn="true"]').wait_for()


def test_the_charts_are_drawn_with_their_tables_without_errors(browser: Browser, console: Console) -> None:
    page = sign_in(browser, console, "viewer@example.com")
    errors = watched(page)
    drawn_dashboard(page, console)
    figures = page.locator("figure.chart")
    assert figures.count() == 4
    for n in range(4):
        assert figures.nth(n).locator("canvas").count() >= 1
    assert page.evaluate("window.violations") == []
    assert errors == []
    records = page.locator('[data-chart="records"] details table')
    assert records.locator("tbody tr").count() == 7 * 24
    orders = page.locator('[data-chart="orders"]')
    orders.get_by_text("The numbers").click()
    label = THREE_DAYS_AGO.strftime("%Y-%m-%d")
    row = orders.get_by_role("row", name=re.compile(f"^{label}"))
    assert row.locator("td").all_inner_texts() == ["2", "25.50"]


def test_the_charts_have_no_serious_accessibility_violations(browser: Browser, console: Console) -> None:
    page = sign_in(browser, console, "viewer@example.com", for_axe=True)
    drawn_dashboard(page, console)
    page.wait_for_load_state("networkidle")
    page.evaluate("document.querySelectorAll('.chart details').forEach((d) => { d.open = true; })")
    assert axe(page) == []
    page.context.close()


def test_the_readme_screenshot_of_the_dashboard(browser: Browser, console: Console) -> None:
    """Writes docs/console.png, which README.md shows."""
    page = sign_in(browser, console, "owner@example.com")
    page.set_viewport_size({"width": 1280, "height": 1100})
    drawn_dashboard(page, console)
    page.locator(".verdict").wait_for()
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
