"""What Ometria's own tag sends, understood as it means it, through HTTP on both stores, with beacons
built by hand in the tag's exact shape (keys and values through ``encodeURIComponent``):

- a product page's ``pageview`` (``d[type]=product&d[pid]=...``, all that ``init("product", {pid})``
  sends) is a product view wherever a ``viewproduct`` is one: the session's count, browse
  abandonment and the profile's timeline; a ``viewproduct`` of the page's own product is not
  counted again;
- ``d[profile][...]`` of ``identify`` and ``profile`` (``setProfileData``) events fills the profile's
  own fields that no contact has, the latest value winning, checked and never an identifier; a pushed
  contact always wins;
- an abandoned basket's quantities stay integers when they were sent as integers;
- the profile has ``suffix``, from contacts.

Each test ends with a rebuild of the account's profiles, which must change nothing. The last test does
the tag's part in Chromium, with Patron's own tag on pages as Ometria documents them.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import select

from conftest import Tenant, eventually, push, served_account
from patron import accounts
from patron.profiles import build
from patron.store.schema import tracking_events, tracking_sessions
from support.app import App, Client, app_fixtures
from support.http import read
from test_tracking_browser import browser_page, visit

shared, client, make_tenant = app_fixtures(session_idle=1.0, track_per_visitor="60/minute")
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def uri(text: str) -> str:
    """JavaScript's ``encodeURIComponent``."""
    return quote(text, safe="-_.!~*'()")


def field(path: str, value: str) -> str:
    """One ``key=value`` pair as the tag writes it: ``d[profile][firstname]`` -> ``d%5Bprofile%5D...``."""
    return f"{uri(path)}={uri(value)}"


class Visitor:
    """One browser of a shop, sending hand-built beacons: the common fields of Ometria's tag, then the
    event's ``type``, ``channel`` and ``d[...]`` pairs."""

    counter = 0

    def __init__(self, client: Client, tenant: Tenant) -> None:
        Visitor.counter += 1
        self.client, self.tenant = client, tenant
        self.cid = f"fidelity{Visitor.counter:08d}"
        self.sid = f"sess{Visitor.counter:08d}a"

    def send(self, kind: str, *pairs: tuple[str, str], url: str = "https://shop.example/") -> None:
        common = [
            ("cid", self.cid),
            ("cnew", "0"),
            ("sid", self.sid),
            ("snew", "0"),
            ("nses", "1"),
            ("npv", "1"),
            ("tlast", "0"),
            ("url", url),
            ("rurl", ""),
            ("src", "||||||20000"),
            ("osrc", "||||||20000"),
            ("osts", "1700000000"),
            ("tids", ""),
            ("dtouch", "0"),
            ("dsize", "1280x720"),
            ("enc", "UTF-8"),
            ("cor", "abcdefghijklmnop"),
            ("site", "default"),
        ]
        query = "&".join(field(k, v) for k, v in [*common, *pairs, ("type", kind), ("channel", "system")])
        data = base64.b64encode(query.encode("ascii")).decode().swapcase()
        answer = self.client.get(
            f"/track/v3/{self.tenant.hash}/event.gif", params={"data": data, "rnd": "a1b2c3", "enc": "UTF-8"}
        )
        assert answer.status_code == 200 and answer.content == GIF

    def identify(self, uiid: str, /, **profile: str) -> None:
        self.send("identify", ("d[uiid]", uiid), *((f"d[profile][{k}]", v) for k, v in profile.items()))

    def product_page(self, pid: str, url: str | None = None) -> None:
        """What ``ometria.init("product", {"pid": pid})`` sends."""
        self.send(
            "pageview",
            ("d[pid]", pid),
            ("d[rurl]", ""),
            ("d[type]", "product"),
            url=url or f"https://shop.example/p/{pid}",
        )


def settle(client: Client, tenant: Tenant) -> None:
    """Wait until everything sent so far is applied (beacons queue like pushes)."""
    push(
        client,
        tenant,
        [{"@type": "custom_event", "id": "barrier", "event_type": "barrier", "identity_email": "b@x.io"}],
    )


def session(app: App, visitor: Visitor) -> Any:
    s = tracking_sessions
    return app.store.read_blocking(
        lambda conn: conn.execute(
            select(s).where(s.c.cid == visitor.cid, s.c.session_id == visitor.sid)
        ).one()
    )


def events_of(app: App, visitor: Visitor) -> list[str]:
    e = tracking_events
    kinds: list[str] = app.store.read_blocking(
        lambda conn: list(
            conn.execute(select(e.c.kind).where(e.c.cid == visitor.cid).order_by(e.c.id)).scalars()
        )
    )
    return kinds


def custom_events(client: Client, tenant: Tenant, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = read(client, tenant, "/v2/custom-events?limit=250")
    return [e for e in found if e["event_type"] == kind]


def the_profile(client: Client, tenant: Tenant, email: str) -> dict[str, Any]:
    [found] = read(client, tenant, f"/v2/profiles?email={email}")
    return found


def assert_rebuild_changes_nothing(app: App, tenant: Tenant) -> None:
    account = app.store.read_blocking(lambda conn: accounts.get_account(conn, tenant.hash))
    ids = app.store.read_blocking(lambda conn: build.live_profiles(conn, account.id))
    changed = app.store.write_blocking(lambda conn: build.refresh(conn, account.id, ids, accounts.now()))
    assert changed == 0


# product page views -----------------------------------------------------------------------------


def test_a_product_page_view_is_a_product_view_for_browse_abandonment_and_the_timeline(
    shared: App, client: Client, tenant: Tenant
) -> None:
    ann = Visitor(client, tenant)
    ann.identify("ann@example.org")
    ann.product_page("11111")
    ann.product_page("22222")
    ann.product_page("11111")  # seen again: one product, two views
    [event] = eventually(lambda: custom_events(client, tenant, "browse_abandoned"), "browse_abandoned")
    profile = the_profile(client, tenant, "ann@example.org")
    assert event["profile_id"] == profile["id"]
    assert event["properties"] == {"session_id": ann.sid, "products": ["11111", "22222"]}
    assert session(shared, ann).product_views == 3
    timeline = read(client, tenant, f"/v2/profiles/{profile['id']}/activity")
    views = [(a["type"], a.get("page_type"), a.get("product_id")) for a in reversed(timeline)]
    assert [v for v in views if v[2]] == [
        ("pageview", "product", "11111"),
        ("pageview", "product", "22222"),
        ("pageview", "product", "11111"),
    ]
    assert_rebuild_changes_nothing(shared, tenant)


def test_a_viewproduct_of_the_pages_own_product_is_not_counted_twice(
    shared: App, client: Client, tenant: Tenant
) -> None:
    """Patron's own tag on a page that calls ``viewProduct(pid)`` and ``init("product", {pid})``
    sends both; the ``viewproduct`` repeats the page's view. Another product's ``viewproduct`` on
    that page (a quick view), or the same product's elsewhere, is a view of its own."""
    bob = Visitor(client, tenant)
    bob.identify("bob@example.org")
    bob.product_page("p-1")
    bob.send("viewproduct", ("d[pid]", "p-1"), url="https://shop.example/p/p-1")  # the page's own
    bob.send("viewproduct", ("d[pid]", "p-2"), url="https://shop.example/p/p-1")  # a quick view
    bob.send("viewproduct", ("d[pid]", "p-1"), url="https://shop.example/p/p-1")  # still p-1's page
    bob.send("pageview", ("d[type]", "listing"), url="https://shop.example/shoes")
    bob.send("viewproduct", ("d[pid]", "p-1"), url="https://shop.example/shoes")  # not on its page
    bob.product_page("p-1")  # back on its page: a new view
    settle(client, tenant)
    assert session(shared, bob).product_views == 4
    profile = the_profile(client, tenant, "bob@example.org")
    timeline = read(client, tenant, f"/v2/profiles/{profile['id']}/activity?limit=250")
    web = [(a["type"], a.get("product_id")) for a in reversed(timeline) if a["channel"] == "web"]
    assert web == [
        ("identify", None),
        ("pageview", "p-1"),
        ("viewproduct", None),
        ("viewproduct", "p-2"),
        ("viewproduct", None),
        ("pageview", None),
        ("viewproduct", "p-1"),
        ("pageview", "p-1"),
    ]
    [event] = eventually(lambda: custom_events(client, tenant, "browse_abandoned"), "browse_abandoned")
    assert event["properties"]["products"] == ["p-1", "p-2"]
    assert_rebuild_changes_nothing(shared, tenant)


def test_a_product_pages_own_viewproduct_queued_before_its_page_view_is_still_one_view(
    shared: App, client: Client, tenant: Tenant
) -> None:
    """The tag sends each event as an image request of its own, so a product page's ``viewproduct``
    may reach the queue before the page view sent just before it. It is one view all the same; a
    reload of the page is another."""
    cy = Visitor(client, tenant)
    cy.identify("cy@example.org")
    cy.send("pageview", ("d[type]", "listing"), url="https://shop.example/shoes")
    cy.send("viewproduct", ("d[pid]", "p-1"), url="https://shop.example/p/p-1")  # overtook its page view
    cy.product_page("p-1")
    settle(client, tenant)
    assert session(shared, cy).product_views == 1
    cy.product_page("p-1")  # reloaded
    cy.send("viewproduct", ("d[pid]", "p-1"), url="https://shop.example/p/p-1")
    settle(client, tenant)
    assert session(shared, cy).product_views == 2
    assert_rebuild_changes_nothing(shared, tenant)


@pytest.mark.parametrize(
    "pairs",
    [
        (("d[type]", "Product"), ("d[pid]", "p-1")),  # the tag sends the type as the page gave it
        (("d[type]", "product"),),  # no product id
        (("d[type]", "product"), ("d[pid]", "null")),  # the tag's JavaScript null
        (("d[type]", "product"), ("d[pid]", "")),
        (("d[type]", "product"), ("d[pid]", "two words")),  # no product's id
        (("d[type]", "product"), ("d[pid]", "x" * 513)),
        (("d[type]", "product"), ("d[pid][0]", "p-1")),  # not a string
        (("d[type]", "listing"), ("d[pid]", "p-1")),
    ],
)
def test_what_names_no_product_is_no_product_view_and_is_kept_as_before(
    shared: App, client: Client, tenant: Tenant, pairs: tuple[tuple[str, str], ...]
) -> None:
    cy = Visitor(client, tenant)
    cy.identify("cy@example.org")
    cy.send("pageview", *pairs)
    cy.send("viewproduct")  # no product id either
    settle(client, tenant)
    assert events_of(shared, cy) == ["identify", "pageview", "viewproduct"]
    kept = session(shared, cy)
    assert (kept.page_views, kept.product_views) == (1, 0)
    ended = eventually(lambda: (s := session(shared, cy)).outcome and s, "the session's end")
    assert ended.outcome == "ended"  # nothing viewed: no browse_abandoned
    assert custom_events(client, tenant, "browse_abandoned") == []


# abandoned baskets ------------------------------------------------------------------------------


def test_an_abandoned_baskets_quantities_sent_as_integers_stay_integers(
    client: Client, tenant: Tenant
) -> None:
    dee = Visitor(client, tenant)
    dee.identify("dee@example.org")
    dee.send(
        "setbasket",
        ("d[id]", "b-1"),
        ("d[total]", "62.50"),
        ("d[cur]", "GBP"),
        ("d[size]", "5"),
        ("d[url]", "/basket"),
        ("d[lis][0][pid]", "p-1"),
        ("d[lis][0][q]", "2"),
        ("d[lis][0][tot]", "40"),
        ("d[lis][1][pid]", "p-2"),
        ("d[lis][1][q]", "2.5"),
        ("d[lis][1][tot]", "12.5"),
        ("d[lis][2][pid]", "p-3"),
        ("d[lis][2][q]", "1"),
        ("d[lis][2][tot]", "£10.00"),
    )
    [event] = eventually(lambda: custom_events(client, tenant, "abandoned_basket"), "abandoned_basket")
    lines = event["properties"]["lines"]
    assert lines == [
        {"product_id": "p-1", "quantity": 2, "total": 40},
        {"product_id": "p-2", "quantity": 2.5, "total": 12.5},
        {"product_id": "p-3", "quantity": 1, "total": 10},
    ]
    assert [type(line["quantity"]) for line in lines] == [int, float, int]  # 2 in the JSON, not 2.0


# profile data from the tag ----------------------------------------------------------------------


def test_the_tags_profile_data_fills_the_fields_no_contact_has_and_a_contact_wins(
    shared: App, client: Client, tenant: Tenant
) -> None:
    eve = Visitor(client, tenant)
    eve.identify(
        "eve@example.org",
        firstname="  Eve ",
        lastname="Adams",
        gender="Female",
        date_of_birth="1990-02-01",
        country_id="gb",
        prefix="Dr",
    )
    settle(client, tenant)
    profile = the_profile(client, tenant, "eve@example.org")
    assert (profile["firstname"], profile["lastname"], profile["name"]) == ("Eve", "Adams", "Eve Adams")
    assert (profile["prefix"], profile["gender"], profile["date_of_birth"]) == ("Dr", "f", "1990-02-01")
    assert (profile["country_id"], profile["country"]) == ("GB", "GB")

    # setProfileData, in a later session: the latest value of each field wins; the rest stay
    eve.sid = eve.sid[:-1] + "b"
    eve.send(
        "profile",
        ("d[profile][firstname]", "Evelyn"),
        ("d[profile][suffix]", "PhD"),
        ("d[uiid]", "eve@example.org"),
    )
    settle(client, tenant)
    profile = the_profile(client, tenant, "eve@example.org")
    assert (profile["firstname"], profile["lastname"], profile["suffix"]) == ("Evelyn", "Adams", "PhD")

    # a contact pushed later wins for the fields it has; the tag keeps filling the others
    push(
        client,
        tenant,
        [{"@type": "contact", "id": "eve", "email": "eve@example.org", "firstname": "Eva", "gender": "o"}],
    )
    profile = the_profile(client, tenant, "eve@example.org")
    assert (profile["firstname"], profile["gender"], profile["lastname"]) == ("Eva", "o", "Adams")
    assert profile["name"] == "Eva Adams"

    # ...even when the tag's value is newer
    eve.identify("eve@example.org", firstname="Evie", gender="f", middlename="Rose")
    settle(client, tenant)
    profile = the_profile(client, tenant, "eve@example.org")
    assert (profile["firstname"], profile["gender"], profile["middlename"]) == ("Eva", "o", "Rose")
    assert_rebuild_changes_nothing(shared, tenant)


def test_what_the_tag_sends_that_does_not_fit_is_dropped_and_identifiers_link_nothing(
    shared: App, client: Client, tenant: Tenant
) -> None:
    fay = Visitor(client, tenant)
    fay.identify("fay@example.org", firstname="Fay", gender="f", date_of_birth="1985-06-30", country_id="FR")
    fay.identify(
        "fay@example.org",
        firstname="x" * 256,  # too long
        lastname="Line\nbreak",  # a control character
        middlename="null",  # the tag's JavaScript null
        prefix="   ",  # blank
        gender="x",
        date_of_birth="1990-02-30",  # no such day
        country_id="ZZ",  # no such country
        email="someone.else@example.org",  # identifiers: never the tag's to give
        customer_id="C-42",
        phone_number="+447700900123",
        vip="true",  # not a field of the profile
    )
    fay.send("profile", ("d[profile]", "flat"), ("d[uiid]", "fay@example.org"))  # not an object
    fay.send("profile", ("d[profile][firstname][0]", "Nested"), ("d[uiid]", "fay@example.org"))
    settle(client, tenant)
    profile = the_profile(client, tenant, "fay@example.org")
    assert (profile["firstname"], profile["lastname"], profile["middlename"], profile["prefix"]) == (
        "Fay",
        None,
        None,
        None,
    )
    assert (profile["gender"], profile["date_of_birth"], profile["country_id"]) == ("f", "1985-06-30", "FR")
    assert profile["customer_id"] is None and profile["email"] == "fay@example.org"
    assert {(i["type"], i["id"]) for i in profile["identities"]} == {("email", "fay@example.org")}
    assert read(client, tenant, "/v2/profiles?email=someone.else@example.org") == []
    assert "vip" not in profile["properties"]
    assert events_of(shared, fay) == ["identify", "identify", "profile", "profile"]  # all kept
    assert_rebuild_changes_nothing(shared, tenant)


def test_the_tags_data_follows_the_session_a_merge_moves_and_a_second_identify_takes(
    shared: App, client: Client, tenant: Tenant
) -> None:
    """Profile data belongs to the profile its session is linked to: a merge brings it to the survivor;
    a hand-built session that identifies as someone else goes to them (with its data), and the profile
    it leaves is recomputed too (a rebuild agrees)."""
    gus = Visitor(client, tenant)
    gus.identify("gus@example.org", lastname="Grant")
    hal = Visitor(client, tenant)
    hal.identify("hal@example.org", firstname="Hal")
    settle(client, tenant)
    merge = client.post(
        "/v2/merge-profile",
        json={
            "survivor": {"type": "email_address", "value": "hal@example.org"},
            "customers_to_merge": [{"type": "email_address", "value": "gus@example.org"}],
        },
        headers=tenant.headers,
    )
    assert merge.status_code == 202, merge.text
    settle(client, tenant)
    survivor = the_profile(client, tenant, "hal@example.org")
    assert (survivor["firstname"], survivor["lastname"]) == ("Hal", "Grant")

    ivy = Visitor(client, tenant)
    ivy.identify("ivy@example.org", firstname="Ivy")
    settle(client, tenant)
    assert the_profile(client, tenant, "ivy@example.org")["firstname"] == "Ivy"
    ivy.identify("jo@example.org")  # the same browser and session: the session, all of it, is Jo's now
    settle(client, tenant)
    assert the_profile(client, tenant, "ivy@example.org")["firstname"] is None
    assert the_profile(client, tenant, "jo@example.org")["firstname"] == "Ivy"
    assert_rebuild_changes_nothing(shared, tenant)


# suffix -----------------------------------------------------------------------------------------


def test_the_profile_has_the_suffix_of_its_named_contact(shared: App, client: Client, tenant: Tenant) -> None:
    contact = {
        "@type": "contact",
        "id": "kim",
        "email": "kim@example.org",
        "firstname": "Kim",
        "prefix": "Ms",
    }
    push(client, tenant, [{**contact, "suffix": "Jr"}])
    stored = read(client, tenant, "/v2/contacts/default/kim")
    assert stored["suffix"] == "Jr"
    profile = the_profile(client, tenant, "kim@example.org")
    assert (profile["prefix"], profile["firstname"], profile["suffix"]) == ("Ms", "Kim", "Jr")
    assert list(profile).index("suffix") == list(profile).index("lastname") + 1  # Ometria's order
    push(
        client,
        tenant,
        [
            {
                "@type": "contact",
                "id": "kim2",
                "@collection": "app",
                "email": "kim@example.org",
                "lastname": "Lee",
            }
        ],
    )
    profile = the_profile(client, tenant, "kim@example.org")  # names from one contact: the newest named
    assert (profile["prefix"], profile["lastname"], profile["suffix"]) == (None, "Lee", None)
    assert_rebuild_changes_nothing(shared, tenant)


# in a browser, with Patron's own tag ------------------------------------------------------------


@contextmanager
def shop(tag_url: str) -> Iterator[str]:
    """Two pages on a loopback port of their own, as Ometria's documentation writes them: an account
    page that identifies the visitor with profile data, and a product page that only says what it is."""
    scripts = {
        "/account": 'ometria.init("content"); ometria.identify("ann@example.com", {"firstname": "Ann"});',
        "/product/11111": 'ometria.init("product", {"pid": "11111"});',
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            script = scripts.get(urlsplit(self.path).path)
            body = (
                f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>'
                f'<script src="{tag_url}"></script></head><body><h1>Shop</h1><script>{script}</script>'
                "</body></html>"
                if script
                else "not found"
            ).encode()
            self.send_response(200 if script else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_in_chromium_a_product_page_ends_in_browse_abandoned_and_identify_names_the_profile(
    tmp_path: Path, patron_environment: dict[str, str]
) -> None:
    """``init("product", {pid})`` alone, then the session goes idle (``PATRON_SESSION_IDLE``: 2 s
    here): ``browse_abandoned`` names the product. ``identify(email, {firstname})`` names the
    profile until a contact pushed later says otherwise."""
    environment = {**patron_environment, "PATRON_SESSION_IDLE": "2"}
    with served_account(tmp_path, environment) as (server, tenant), server.client() as http:
        with shop(f"{server.url}/tags/{tenant.hash}.js") as site, browser_page() as page:
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            visit(page, f"{site}/account")
            visit(page, f"{site}/product/11111")
            assert page.evaluate("ometria._lastSent.d") == {"pid": "11111", "rurl": "", "type": "product"}
            assert errors == []
        [event] = eventually(
            lambda: [
                e for e in read(http, tenant, "/v2/custom-events") if e["event_type"] == "browse_abandoned"
            ],
            "browse_abandoned",
        )
        [profile] = read(http, tenant, "/v2/profiles?email=ann@example.com")
        assert event["profile_id"] == profile["id"]
        assert event["properties"]["products"] == ["11111"]
        assert (profile["firstname"], profile["name"]) == ("Ann", "Ann")
        timeline = read(http, tenant, f"/v2/profiles/{profile['id']}/activity")
        assert [a["product_id"] for a in timeline if a.get("product_id")] == ["11111"]

        push(
            http, tenant, [{"@type": "contact", "id": "ann", "email": "ann@example.com", "firstname": "Anna"}]
        )
        [profile] = read(http, tenant, "/v2/profiles?email=ann@example.com")
        assert (profile["firstname"], profile["name"]) == ("Anna", "Anna")
