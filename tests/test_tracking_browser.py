"""The website tag in a real browser (Debian's Chromium driven by Playwright) on a small demo shop the
test serves: a visitor lands from a newsletter, browses, adds to the basket, logs in, checks out and
buys; the server then holds one visitor, its session and source, the product views, the basket, the
transaction joined to the order pushed through the API, and the profile linked. A second visitor
leaves a basket behind and, once the session has gone idle, the profile has an ``abandoned_basket``
event."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, sync_playwright
from sqlalchemy import select

from conftest import Server, eventually, push, served_account
from patron.config import Settings
from patron.store import open_store
from patron.store.schema import tracking_sessions, visitors
from support.http import read
from test_docs_page import CHROMIUM, FLAGS

PRODUCTS = {"p-1": ("Red shoes", 25), "p-2": ("Blue hat", 10)}
SHOP_JS = """
function basketFromStorage() {
  var lines = JSON.parse(localStorage.getItem("basket") || "[]"), basket = new ometria.Basket(), total = 0;
  lines.forEach(function (l) { basket.addLineItem(l.pid, l.q, l.price * l.q); total += l.price * l.q; });
  basket.setTotal(total, "GBP"); basket.setId("basket-1"); basket.setUrl("/basket");
  return lines.length ? basket : null;
}
function addToBasket(pid, price) {
  var lines = JSON.parse(localStorage.getItem("basket") || "[]");
  lines.push({pid: pid, q: 1, price: price});
  localStorage.setItem("basket", JSON.stringify(lines));
  ometria.trackAddToBasket(pid, 1);
  ometria.setBasket(basketFromStorage());
  document.getElementById("added").textContent = "Added";
}
"""


def page_html(tag_url: str, title: str, body: str, script: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<script src="{tag_url}"></script><script>{SHOP_JS}</script></head>
<body><h1>{title}</h1>{body}<p id="added"></p>
<script>{script}</script></body></html>"""


def shop_pages(tag_url: str) -> Callable[[str, dict[str, list[str]]], str | None]:
    """The demo shop: home, a listing, products, the basket, login, checkout and confirmation."""

    def render(path: str, query: dict[str, list[str]]) -> str | None:
        basket = "var b = basketFromStorage(); if (b) { ometria.setBasket(b); }"
        if path == "/":
            return page_html(
                tag_url, "Home", '<a href="/shoes">Shoes</a>', f'ometria.init("landing"); {basket}'
            )
        if path == "/shoes":
            links = "".join(f'<a href="/product/{p}">{n}</a> ' for p, (n, _) in PRODUCTS.items())
            init = 'ometria.init("listing", {"category_id": "shoes", "nitems": 2});'
            return page_html(tag_url, "Shoes", links, init + basket)
        if path.startswith("/product/") and path[9:] in PRODUCTS:
            pid = path[9:]
            name, price = PRODUCTS[pid]
            button = f"<button onclick=\"addToBasket('{pid}', {price})\">Add to basket</button>"
            # raised before init: queued by the tag, sent after the page view
            script = f'ometria.viewProduct("{pid}"); ometria.init("product", {{"pid": "{pid}"}}); {basket}'
            return page_html(tag_url, name, button + '<a href="/login">Log in</a>', script)
        if path == "/login":
            form = '<form action="/account"><input id="email" name="email"><button>Log in</button></form>'
            return page_html(tag_url, "Log in", form, f'ometria.init("content"); {basket}')
        if path == "/account":
            email = json.dumps(query.get("email", [""])[0])
            script = f'ometria.init("content"); ometria.identify({email}); {basket}'
            return page_html(tag_url, "Your account", '<a href="/checkout">Checkout</a>', script)
        if path == "/checkout":
            script = (
                f'ometria.init("checkout", {{"step": "payment"}}); {basket} ometria.trackCheckout("payment");'
            )
            return page_html(tag_url, "Checkout", '<a href="/confirmation">Pay</a>', script)
        if path == "/confirmation":
            script = (
                'ometria.init("confirmation"); ometria.trackTransaction("order-1"); localStorage.clear();'
            )
            return page_html(tag_url, "Thank you", "", script)
        if path == "/extras":
            script = (
                'ometria.setPageType("search"); ometria.setPageData({"search": "hats"});'
                ' ometria.observeEmailInputs("#news"); ometria.init("content", {}, "uk");'
                ' ometria.track("wishlist", {"pid": "p-1"}); ometria.setProfileData({"firstname": "Carol"});'
            )
            return page_html(tag_url, "Extras", '<label>News <input id="news"></label>', script)
        return None

    return render


@contextmanager
def demo_shop(tag_url: str) -> Iterator[str]:
    """The shop on a loopback port of its own (another origin than Patron's)."""
    render = shop_pages(tag_url)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            html = render(parts.path, parse_qs(parts.query))
            body = (html or "not found").encode()
            self.send_response(200 if html else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def browser_page() -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            # The browser does not trust the generated CA that serves the tag; the test does.
            yield browser.new_page(ignore_https_errors=True)
        finally:
            browser.close()


def idle(page: Page, seconds: int) -> None:
    """Move the ``ometria`` cookie's last activity back, as if the visitor had been away."""
    page.evaluate(
        """(seconds) => {
            var value = decodeURIComponent(document.cookie.split("ometria=2_")[1].split(";")[0]);
            var moved = value.replace(/slt=(\\d+)/, (m, t) => "slt=" + (Number(t) - seconds));
            document.cookie = "ometria=2_" + encodeURIComponent(moved) + "; path=/";
        }""",
        seconds,
    )


def visit(page: Page, url: str) -> None:
    page.goto(url, wait_until="networkidle")  # the beacons are out


def stored(server: Server, environment: dict[str, str], table: Any) -> list[Any]:
    settings = replace(
        Settings(),
        data_dir=server.data_dir,
        database_url=environment.get("PATRON_DATABASE_URL"),
        redis_url=None,
    )
    store = open_store(settings)
    store.start()
    try:
        rows: list[Any] = store.read_blocking(lambda conn: conn.execute(select(table)).all())
        return rows
    finally:
        store.close()


def test_a_shopping_journey_builds_the_visitor_session_source_basket_and_order(
    tmp_path: Path, patron_environment: dict[str, str]
) -> None:
    with served_account(tmp_path, patron_environment) as (server, tenant), server.client() as http:
        with demo_shop(f"{server.url}/tags/{tenant.hash}.js") as shop, browser_page() as page:
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            visit(page, f"{shop}/?utm_source=newsletter&utm_medium=email&utm_campaign=spring")
            page.click("text=Shoes")
            page.wait_for_load_state("networkidle")
            page.click("text=Red shoes")
            page.wait_for_load_state("networkidle")
            page.click("text=Add to basket")
            page.wait_for_selector("text=Added")
            page.wait_for_load_state("networkidle")
            assert page.evaluate("[ometria.getBasket().total, ometria.getBasket().cur]") == [25, "GBP"]
            page.click("text=Log in")
            page.wait_for_load_state("networkidle")
            page.fill("#email", "ann@example.org")
            page.click("button")
            page.wait_for_load_state("networkidle")
            page.click("text=Checkout")
            page.wait_for_load_state("networkidle")
            page.click("text=Pay")
            page.wait_for_load_state("networkidle")
            assert page.evaluate("ometria.getIdentity()") == "ann@example.org"
            assert page.evaluate("ometria.isNewVisitor()") is True
            assert errors == []
        order = {"@type": "order", "id": "order-1", "grand_total": 25, "currency": "GBP"}
        push(http, tenant, [{**order, "customer": {"email": "ann@example.org"}}])

        [profile] = eventually(lambda: read(http, tenant, "/v2/profiles?email=ann@example.org"), "a profile")
        timeline = eventually(
            lambda: (
                (t := read(http, tenant, f"/v2/profiles/{profile['id']}/activity?limit=250"))
                and any(a["type"] == "transaction" for a in t)
                and t
            ),
            "the transaction",
        )
        web = [a for a in reversed(timeline) if a["channel"] == "web"]
        assert [a["page_type"] for a in web if a["type"] == "pageview"] == [
            "homepage",
            "listing",
            "product",
            "content",
            "content",
            "checkout",
            "confirmation",
        ]
        kinds = [a["type"] for a in web if a["type"] != "pageview"]
        assert kinds.index("viewproduct") < kinds.index("addtobasket") < kinds.index("identify")
        assert kinds.index("identify") < kinds.index("checkout") < kinds.index("transaction")
        [viewed] = [a for a in web if a["type"] == "viewproduct"]
        product_page = next(i for i, a in enumerate(web) if a.get("page_type") == "product")
        assert web.index(viewed) == product_page + 1  # raised before init: sent after the page view
        assert viewed["data"] == {"pid": "p-1"}
        baskets = [a["data"] for a in web if a["type"] == "setbasket"]
        assert baskets[0]["lis"] == [{"pid": "p-1", "q": "1", "tot": "25"}]
        assert baskets[0]["total"] == "25" and baskets[0]["cur"] == "GBP"
        assert len({a["session_id"] for a in web}) == 1  # one session throughout
        assert any(a["type"] == "order" and a["id"] == "order-1" for a in timeline)

        attribution = read(http, tenant, "/v2/orders/order-1")["@attribution"]
        source = {"medium": "email", "campaign": "spring", "source": "newsletter"}
        assert attribution["first_touch"] == attribution["last_touch"] == source
        assert attribution["session_id"] == web[0]["session_id"]
        [profile] = read(http, tenant, "/v2/profiles?email=ann@example.org")
        assert profile["stats"]["visits"] == 1 and profile["stats"]["orders"] == 1
        assert profile["dates"]["first_seen"] is not None

    [visitor] = stored(server, patron_environment, visitors)
    [session] = stored(server, patron_environment, tracking_sessions)
    assert visitor.profile == session.profile == profile["id"]
    assert (session.page_views, session.product_views, session.basket_adds) == (7, 1, 1)
    assert session.checkout_stage == "payment" and json.loads(session.transactions) == ["order-1"]
    assert json.loads(session.basket)["lines"] == [{"product_id": "p-1", "quantity": 1, "total": 25}]


def test_a_basket_left_behind_becomes_an_abandoned_basket_event_once_the_session_is_idle(
    tmp_path: Path, patron_environment: dict[str, str]
) -> None:
    """The session's idle time is the server's clock setting (``PATRON_SESSION_IDLE``: 2 s here,
    Ometria's 30 minutes by default)."""
    environment = {**patron_environment, "PATRON_SESSION_IDLE": "2"}
    with served_account(tmp_path, environment) as (server, tenant), server.client() as http:
        with demo_shop(f"{server.url}/tags/{tenant.hash}.js") as shop, browser_page() as page:
            visit(page, f"{shop}/account?email=bob%40example.org")
            visit(page, f"{shop}/product/p-2")
            page.click("text=Add to basket")
            page.wait_for_selector("text=Added")
            page.wait_for_load_state("networkidle")
        events = eventually(
            lambda: [
                e for e in read(http, tenant, "/v2/custom-events") if e["event_type"] == "abandoned_basket"
            ],
            "the abandoned basket",
        )
        [profile] = read(http, tenant, "/v2/profiles?email=bob@example.org")
        [event] = events
        assert event["profile_id"] == profile["id"]
        assert event["properties"]["lines"] == [{"product_id": "p-2", "quantity": 1, "total": 10}]
        assert (event["properties"]["total"], event["properties"]["currency"]) == (10, "GBP")
        assert event["properties"]["basket_url"] == "/basket"
        assert read(http, tenant, f"/v2/profiles/{profile['id']}/activity")[0]["type"] == "abandoned_basket"


def test_the_rest_of_the_tags_methods_and_its_session_rules(
    tmp_path: Path, patron_environment: dict[str, str]
) -> None:
    """``om_user`` in the URL, page type and data overrides, a store id, a custom event, profile data,
    an email typed into an observed input (another person: a new visitor), and the 30-minute rule."""
    with served_account(tmp_path, patron_environment) as (server, tenant), server.client() as http:
        with demo_shop(f"{server.url}/tags/{tenant.hash}.js") as shop, browser_page() as page:
            visit(page, f"{shop}/extras?om_user=carol%40example.org")
            first = page.evaluate("ometria._debug().cookie")
            assert (first["uiid"], int(first["nses"])) == ("carol@example.org", 1)
            page.fill("#news", "dave@example.org")
            page.press("#news", "Tab")  # the change event
            page.wait_for_load_state("networkidle")
            second = page.evaluate("ometria._debug().cookie")
            assert second["uiid"] == "dave@example.org" and second["cid"] != first["cid"]
            # half an hour later (the cookie's last activity moved back): a new session
            idle(page, 1801)
            visit(page, f"{shop}/shoes")
            third = page.evaluate("ometria._debug().cookie")
            assert third["cid"] == second["cid"] and third["sid"] != second["sid"] and int(third["nses"]) == 2
            visit(page, f"{shop}/")
            assert page.evaluate("ometria._debug().cookie")["sid"] == third["sid"]  # within the session
            # ten minutes on, from another site: a new session, with that site as its source...
            idle(page, 601)
            page.goto(f"{shop}/shoes", referer="https://www.google.com/search", wait_until="networkidle")
            fourth = page.evaluate("ometria._debug().cookie")
            assert fourth["sid"] != third["sid"] and fourth["src"].startswith("www.google.com|")
            # ...but not from a payment page, nor before ten minutes
            idle(page, 601)
            page.goto(f"{shop}/", referer="https://www.paypal.com/checkout", wait_until="networkidle")
            page.goto(f"{shop}/shoes", referer="https://www.bing.com/", wait_until="networkidle")
            assert page.evaluate("ometria._debug().cookie")["sid"] == fourth["sid"]

        [carol] = eventually(lambda: read(http, tenant, "/v2/profiles?email=carol@example.org"), "carol")
        timeline = eventually(
            lambda: (t := read(http, tenant, f"/v2/profiles/{carol['id']}/activity")) and len(t) >= 4 and t,
            "carol's events",
        )
        by_type = {a["type"]: a for a in timeline}
        pageview = by_type["pageview"]
        assert (pageview["page_type"], pageview["data"]["search"]) == ("search", "hats")
        assert by_type["wishlist"]["data"] == {"pid": "p-1"}
        assert by_type["profile"]["data"]["profile"] == {"firstname": "Carol"}
        assert by_type["identify"]["data"]["uiid"] == "carol@example.org"
        [dave] = eventually(lambda: read(http, tenant, "/v2/profiles?email=dave@example.org"), "dave")
        dave = eventually(
            lambda: (d := read(http, tenant, f"/v2/profiles/{dave['id']}"))["stats"]["visits"] == 3 and d,
            "dave's three sessions",
        )
    sessions = stored(server, patron_environment, tracking_sessions)
    assert {s.site for s in sessions} == {"uk", "default"}
