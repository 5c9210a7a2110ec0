"""The website tag's collector and what the server builds from its events, through HTTP: the wire
format decoded from hand-built payloads of every event type, garbage answered like anything else and
never stored, visitors, sessions and sources, baskets and checkout, transactions joined to orders
pushed through the API, identify linking earlier sessions to a profile, abandonment when a session
goes idle, the profile's timeline, and the per-visitor limit."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from conftest import Tenant, eventually, push
from patron import signing
from patron.store.schema import accounts, tracking_events, tracking_sessions, visitors
from patron.tracking import wire
from support.app import App, Client, app_fixtures
from support.http import read

HASH_ONLY = "0123456789abcdef"


shared, client, make_tenant = app_fixtures(session_idle=1.0, track_per_visitor="30/minute")


def swapped(query: str) -> str:
    """What the tag sends for a query string: base64, letters' case swapped."""
    return base64.b64encode(query.encode()).decode().swapcase()


class Browser:
    """One visitor of a shop, sending the tag's events over HTTP as the tag would."""

    counter = 0

    def __init__(self, client: Client, tenant: Tenant, **common: Any) -> None:
        Browser.counter += 1
        self.client, self.tenant = client, tenant
        sid = f"session{Browser.counter:09d}"
        self.common = {"cid": f"visitor{Browser.counter:09d}", "sid": sid, "src": "|||||", **common}

    def send(self, kind: str, d: dict[str, Any] | None = None, **fields: Any) -> None:
        event = {**self.common, "type": kind, "channel": "system", "d": d or {}, **fields}
        answer = self.client.get(
            f"/track/v3/{self.tenant.hash}/event.gif", params={"data": wire.encode(event), "rnd": "a1b2c3"}
        )
        assert answer.status_code == 200 and answer.content == GIF

    def session(self, sid: str, src: str) -> None:
        self.common.update(sid=sid, src=src)


GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def settle(client: Client, tenant: Tenant) -> None:
    """Wait until everything sent so far is applied (beacons queue like pushes)."""
    push(
        client,
        tenant,
        [{"@type": "custom_event", "id": "barrier", "event_type": "barrier", "identity_email": "b@x.io"}],
    )


def count(app: App, table: Any, account_hash: str | None = None) -> int:
    from patron.store.schema import accounts

    query = select(func.count()).select_from(table)
    if account_hash is not None:
        query = query.where(
            table.c.account_id
            == select(accounts.c.id).where(accounts.c.hash == account_hash).scalar_subquery()
        )
    found: int = app.store.read_blocking(lambda conn: conn.execute(query).scalar_one())
    return found


# the wire format --------------------------------------------------------------------------------

#: Payloads built by hand as Ometria's tag builds them: encodeURIComponent on every key and value
#: (brackets as %5B %5D), null as "null", booleans as true/false.
COMMON = (
    "cid=abcdefgh12345678&sid=abcdef1234XYZ&cnew=1&snew=1&nses=1&npv=1&tlast=0&site=uk&osts=1795740182"
    "&url=https%3A%2F%2Fshop.example%2Fp%3Fx%3D1&src=%7C%7C%7C%7Cnewsletter%7C%7C20784&dsize=1280x720"
)
HAND_BUILT = {
    "pageview": (
        "d%5Btype%5D=product&d%5Bpid%5D=p-1&d%5Brurl%5D=https%3A%2F%2Fwww.google.com%2F",
        {"type": "product", "pid": "p-1", "rurl": "https://www.google.com/"},
    ),
    "identify": (
        "d%5Buiid%5D=ann%40example.org&d%5Bprofile%5D%5Bfirstname%5D=Ann",
        {"uiid": "ann@example.org", "profile": {"firstname": "Ann"}},
    ),
    "profile": (
        "d%5Bprofile%5D%5Bvip%5D=true&d%5Buiid%5D=ann%40example.org",
        {"profile": {"vip": "true"}, "uiid": "ann@example.org"},
    ),
    "addtobasket": ("d%5Bpid%5D=p-1&d%5Bq%5D=2", {"pid": "p-1", "q": "2"}),
    "setbasket": (
        "d%5Bid%5D=b-9&d%5Btotal%5D=59.5&d%5Bcur%5D=GBP&d%5Bsize%5D=3&d%5Blis%5D%5B0%5D%5Bpid%5D=p-1"
        "&d%5Blis%5D%5B0%5D%5Bq%5D=2&d%5Blis%5D%5B0%5D%5Btot%5D=40&d%5Blis%5D%5B1%5D%5Bpid%5D=p-2"
        "&d%5Blis%5D%5B1%5D%5Bvid%5D=null&d%5Blis%5D%5B1%5D%5Bq%5D=1&d%5Blis%5D%5B1%5D%5Btot%5D=19.5",
        {
            "id": "b-9",
            "total": "59.5",
            "cur": "GBP",
            "size": "3",
            "lis": [
                {"pid": "p-1", "q": "2", "tot": "40"},
                {"pid": "p-2", "vid": "null", "q": "1", "tot": "19.5"},
            ],
        },
    ),
    "checkout": ("d%5Bstage%5D=shipping", {"stage": "shipping"}),
    "transaction": ("d%5Btid%5D=order-77", {"tid": "order-77"}),
    "viewproduct": ("d%5Bpid%5D=p-1", {"pid": "p-1"}),
    "wishlist": ("d%5Bpid%5D=p-1&d%5Bnote%5D=gift%20idea", {"pid": "p-1", "note": "gift idea"}),
}


@pytest.mark.parametrize("kind", sorted(HAND_BUILT))
def test_every_event_type_decodes_from_a_hand_built_payload(kind: str) -> None:
    data, expected = HAND_BUILT[kind]
    channel = "custom" if kind == "wishlist" else "system"
    beacon = wire.decode(swapped(f"{COMMON}&type={kind}&channel={channel}&{data}"))
    assert beacon is not None
    assert (beacon.type, beacon.channel, beacon.cid, beacon.sid) == (
        kind,
        channel,
        "abcdefgh12345678",
        "abcdef1234XYZ",
    )
    assert (beacon.cnew, beacon.snew, beacon.nses, beacon.npv) == (1, 1, 1, 1)
    assert (beacon.url, beacon.site) == ("https://shop.example/p?x=1", "uk")
    assert beacon.d == expected


def test_a_plus_that_arrived_as_a_space_still_decodes() -> None:
    data = next(
        d
        for pad in range(3)
        if "+" in (d := swapped(f"{COMMON}&type=viewproduct&d%5Bpid%5D={'x' * pad}~~~~~~"))
    )  # "~" is not escaped, and "~~~" is "fn5+" in base64
    assert wire.decode(data.replace("+", " ")) == wire.decode(data) is not None


@pytest.mark.parametrize(
    "data",
    [
        "",
        "not base64 at all!",
        "=" * 8,
        swapped("just text"),
        swapped("type=pageview"),  # no visitor
        swapped(f"{COMMON}"),  # no type
        swapped(f"{COMMON}&type=x&d=flat"),  # d must be an object
        swapped(f"{COMMON}&type=x&d%5Ba%5D=1&d%5Ba%5D%5Bb%5D=2"),  # a value and an object at once
        swapped(f"{COMMON}&type=x&d" + "%5Ba%5D" * 9 + "=deep"),
        swapped(f"{COMMON}&type=x&" + "&".join(f"d%5Bk{i}%5D=v" for i in range(500))),
        swapped(f"{COMMON}&type=x&d%5Bbad%5D=%E0%A4%A"),  # a broken escape
        swapped(f"{COMMON.replace('abcdefgh12345678', 'bad id with spaces')}&type=x"),
        swapped(f"{COMMON}&type=x%00y"),
        swapped(f"{COMMON}&type=x&nses=-1"),
        base64.b64encode(b"\xff\xfe\x00binary").decode(),
        "A" * 40_000,
    ],
)
def test_what_is_not_an_event_decodes_to_nothing(data: str) -> None:
    assert wire.decode(data) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode().swapcase()))
def test_the_decoder_never_raises(data: str) -> None:
    wire.decode(data)


# the collector ----------------------------------------------------------------------------------


def test_garbage_is_answered_like_an_event_and_nothing_is_stored(
    shared: App, client: Client, tenant: Tenant
) -> None:
    good = wire.encode({"cid": "c" * 16, "sid": "s1", "type": "pageview", "d": {"type": "home"}})
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        (tenant.hash, "GET", {"data": "!!!"}),
        (tenant.hash, "GET", {"data": swapped("type=pageview")}),
        (tenant.hash, "GET", {}),
        (tenant.hash, "GET", {"data": "A" * 50_000}),
        (tenant.hash, "GET", {"data": ["a", "b"]}),
        (tenant.hash, "POST", {"data": "%00\x00"}),
        (tenant.hash, "POST", {"nothing": "here"}),
        (HASH_ONLY, "GET", {"data": good}),  # an account nobody has
        ("not-a-hash", "GET", {"data": good}),
        ("x" * 500, "POST", {"data": good}),
    ]
    answers = []
    for account_hash, method, params in attempts:
        path = f"/track/v3/{account_hash}/event.{'gif' if method == 'GET' else 'html'}"
        answer = client.get(path, params=params) if method == "GET" else client.post(path, data=params)
        answers.append((answer.status_code, answer.headers["content-type"], answer.content))
    gifs = {a for a, (_, method, _) in zip(answers, attempts, strict=True) if method == "GET"}
    pages = {a for a, (_, method, _) in zip(answers, attempts, strict=True) if method == "POST"}
    assert gifs == {(200, "image/gif", GIF)}  # the same, whatever came in
    assert len(pages) == 1 and next(iter(pages))[0] == 200
    raw = client.post(f"/track/v3/{tenant.hash}/event.html", content=b"\xff\x00" * 100)
    assert raw.status_code == 200
    settle(client, tenant)
    assert count(shared, tracking_events, tenant.hash) == 0
    assert count(shared, tracking_events, HASH_ONLY) == 0
    # the same event, for the account that exists, is kept: the collector was listening
    client.get(f"/track/v3/{tenant.hash}/event.gif", params={"data": good})
    client.post(f"/track/v3/{tenant.hash}/event.html", data={"data": good})
    settle(client, tenant)
    assert count(shared, tracking_events, tenant.hash) == 2


def test_a_visitor_over_its_limit_is_dropped(shared: App, client: Client, tenant: Tenant) -> None:
    browser = Browser(client, tenant)
    for page in range(40):  # the limit here: 30 a minute
        browser.send("pageview", {"type": "content", "page": page})
    Browser(client, tenant).send("pageview", {"type": "content"})  # another visitor is not limited
    settle(client, tenant)
    assert count(shared, tracking_events, tenant.hash) == 31


def test_the_tag_is_served_for_a_well_formed_hash_with_this_host_and_caching(
    client: Client, tenant: Tenant
) -> None:
    served = client.get(f"/tags/{tenant.hash}.js")
    assert served.status_code == 200 and served.headers["content-type"].startswith("application/javascript")
    assert f'ACCOUNT = "{tenant.hash}"' in served.text and 'ORIGIN = "http://testserver.local"' in served.text
    assert "__PATRON_" not in served.text and served.headers["cache-control"] == "public, max-age=300"
    again = client.get(f"/tags/{tenant.hash}.js", headers={"If-None-Match": served.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert client.get(f"/tags/{HASH_ONLY}.js").status_code == 200  # no hint whether the account exists
    for wrong in ("nothex.js", f"{tenant.hash}.css", f"{tenant.hash}"):
        assert client.get(f"/tags/{wrong}").status_code == 404


# what the server builds -------------------------------------------------------------------------


def test_sessions_sources_baskets_and_a_transaction_joined_to_its_order(
    shared: App, client: Client, tenant: Tenant
) -> None:
    browser = Browser(client, tenant, osrc="www.google.com|shoes|||||20000")
    browser.session("s-first", "www.google.com|shoes|||||20000")
    browser.send("pageview", {"type": "homepage"}, url="https://shop.example/")
    browser.send("pageview", {"type": "product", "pid": "p-1"}, url="https://shop.example/p-1")
    browser.send("viewproduct", {"pid": "p-1"})
    browser.session("s-second", "news.example|spring|email|sale|ometria|hero|20001")
    browser.send("pageview", {"type": "listing", "category_id": "7"})
    browser.send("addtobasket", {"pid": "p-2", "q": "1"})
    lines = [{"pid": "p-2", "q": 1, "tot": "25.00"}]
    browser.send("setbasket", {"id": "b-1", "total": "25.00", "cur": "GBP", "size": 1, "lis": lines})
    browser.send("checkout", {"stage": "payment"})
    browser.send("transaction", {"tid": "order-1"})
    push(
        client,
        tenant,
        [
            {
                "@type": "order",
                "id": "order-1",
                "grand_total": 25,
                "currency": "GBP",
                "customer": {"email": "ann@example.org"},
            }
        ],
    )

    order = read(client, tenant, "/v2/orders/order-1")
    assert order["@attribution"]["session_id"] == "s-second"
    assert order["@attribution"]["first_touch"] == {
        "referring_domain": "www.google.com",
        "term": "shoes",
        "medium": "organic",
        "source": "www.google.com",
    }
    assert order["@attribution"]["last_touch"] == {
        "referring_domain": "news.example",
        "term": "spring",
        "medium": "email",
        "campaign": "sale",
        "source": "ometria",
        "content": "hero",
    }
    sessions = shared.store.read_blocking(
        lambda conn: {
            r.session_id: r
            for r in conn.execute(
                select(tracking_sessions).where(tracking_sessions.c.cid == browser.common["cid"])
            )
        }
    )
    first, second = sessions["s-first"], sessions["s-second"]
    assert (first.page_views, first.product_views, first.basket_adds) == (2, 1, 0)
    assert (second.page_views, second.basket_adds, second.checkout_stage) == (1, 1, "payment")
    assert second.transactions == '["order-1"]'
    assert "order-1" not in str(
        read(client, tenant, "/v2/orders/order-2" if False else "/v2/orders?limit=250")[0].get(
            "@attribution", ""
        )
    )
    assert count(shared, visitors, tenant.hash) == 1


def test_identify_links_the_visitor_and_its_earlier_sessions_to_the_profile(
    shared: App, client: Client, tenant: Tenant
) -> None:
    push(client, tenant, [{"@type": "contact", "id": "c-ann", "email": "ann@example.org"}])
    browser = Browser(client, tenant)
    browser.session("before-1", "|||||")
    browser.send("pageview", {"type": "homepage"})
    browser.session("before-2", "|||||")
    browser.send("pageview", {"type": "homepage"})
    browser.send("identify", {"uiid": "ANN@example.org"})
    browser.send("viewproduct", {"pid": "p-9"})
    settle(client, tenant)
    [profile] = read(client, tenant, "/v2/profiles?email=ann@example.org")
    assert profile["stats"]["visits"] == 2
    assert profile["dates"]["first_seen"] and profile["dates"]["last_seen"]
    timeline = read(client, tenant, f"/v2/profiles/{profile['id']}/activity")
    assert [(a["channel"], a["type"]) for a in timeline[:4]] == [
        ("web", "viewproduct"),
        ("web", "identify"),
        ("web", "pageview"),
        ("web", "pageview"),
    ]
    assert {a["session_id"] for a in timeline if a["channel"] == "web"} == {"before-1", "before-2"}
    assert (
        read(client, tenant, f"/v2/profiles/{profile['id']}/activity?limit=1&offset=1")[0]["type"]
        == "identify"
    )

    # omid:<identity token> identifies too (a bare profile id does not); an email nobody has makes a
    # profile holding it
    other = Browser(client, tenant)
    other.send("identify", {"uiid": f"omid:{identity(shared, tenant, profile['id'])}"})
    Browser(client, tenant).send("identify", {"uiid": f"omid:{profile['id']}"})
    stranger = Browser(client, tenant)
    stranger.send("identify", {"uiid": "new.person@example.org"})
    stranger.send("identify", {"uiid": "not an email"})
    settle(client, tenant)
    assert read(client, tenant, "/v2/profiles?email=ann@example.org")[0]["stats"]["visits"] == 3
    [made] = read(client, tenant, "/v2/profiles?email=new.person@example.org")
    assert made["stats"]["visits"] == 1


def identity(app: App, tenant: Tenant, profile_id: str, expires: int | None = None) -> str:
    """The identity token a verified link of the account's email hands the tag."""

    def key(conn: Any) -> str:
        account = conn.execute(select(accounts.c.id).where(accounts.c.hash == tenant.hash)).scalar_one()
        return signing.account_key(conn, account)

    until = int(time.time()) + signing.IDENTITY_SECONDS if expires is None else expires
    return signing.identity_token(app.store.write_blocking(key), profile_id, until)


def test_omid_identifies_only_by_a_signed_unexpired_token_of_the_account(
    shared: App, client: Client, tenant: Tenant, make_tenant: Any
) -> None:
    """Profile ids count up: a bare one, or a token that is not the account's own, links nothing."""
    push(client, tenant, [{"@type": "contact", "id": "c-ann", "email": "ann@example.org"}])
    push(client, tenant, [{"@type": "contact", "id": "c-bob", "email": "bob@example.org"}])
    [ann] = read(client, tenant, "/v2/profiles?email=ann@example.org")
    [bob] = read(client, tenant, "/v2/profiles?email=bob@example.org")
    good = identity(shared, tenant, ann["id"])
    named, expires, signature = good.split(".")
    assert named == ann["id"]
    other = make_tenant("another shop")
    refused = [
        ann["id"],  # bare
        f"{ann['id']}.{expires}",  # no signature
        identity(shared, tenant, ann["id"], int(time.time()) - 5),  # expired
        identity(shared, other, ann["id"]),  # another account's key
        f"{ann['id']}.{int(expires) + 86_400}.{signature}",  # a longer life
        f"{bob['id']}.{expires}.{signature}",  # another profile
        f"{ann['id']}.{expires}.{signature[:-1]}{'0' if signature[-1] != '0' else '1'}",
        f"{ann['id']}.{expires}.{signature}é",
        "",
    ]
    for token in refused:
        Browser(client, tenant).send("identify", {"uiid": f"omid:{token}"})
    settle(client, tenant)
    assert read(client, tenant, f"/v2/profiles/{ann['id']}")["stats"]["visits"] == 0
    assert read(client, tenant, f"/v2/profiles/{bob['id']}")["stats"]["visits"] == 0
    assert [v.profile for v in stored_visitors(shared, tenant)] == [None] * len(refused)

    Browser(client, tenant).send("identify", {"uiid": f"omid:{good}"})
    settle(client, tenant)
    assert read(client, tenant, f"/v2/profiles/{ann['id']}")["stats"]["visits"] == 1


def stored_visitors(app: App, tenant: Tenant) -> list[Any]:
    account = select(accounts.c.id).where(accounts.c.hash == tenant.hash).scalar_subquery()
    rows: list[Any] = app.store.read_blocking(
        lambda conn: conn.execute(select(visitors).where(visitors.c.account_id == account)).all()
    )
    return rows


def test_a_merge_brings_the_visits_along(client: Client, tenant: Tenant) -> None:
    for email in ("one@example.org", "two@example.org"):
        Browser(client, tenant).send("identify", {"uiid": email})
    settle(client, tenant)
    merge = client.post(
        "/v2/merge-profile",
        json={
            "survivor": {"type": "email_address", "value": "one@example.org"},
            "customers_to_merge": [{"type": "email_address", "value": "two@example.org"}],
        },
        headers=tenant.headers,
    )
    assert merge.status_code == 202, merge.text
    settle(client, tenant)
    [survivor] = read(client, tenant, "/v2/profiles?email=one@example.org")
    assert survivor["stats"]["visits"] == 2


# abandonment ------------------------------------------------------------------------------------


def abandonment_events(client: Client, tenant: Tenant) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = read(client, tenant, "/v2/custom-events?limit=250")
    return [e for e in found if e["event_type"] in ("abandoned_basket", "browse_abandoned")]


def test_idle_sessions_end_as_abandoned_basket_or_browse_or_not_at_all(
    client: Client, tenant: Tenant
) -> None:
    """The sessions here go idle after 1 s (``session_idle``; Ometria: 30 minutes)."""
    basket = Browser(client, tenant)
    basket.send("identify", {"uiid": "basket@example.org"})
    lines = [{"pid": "p-1", "vid": "p-1-red", "q": 2, "tot": "30"}, {"pid": "p-2", "q": 1, "tot": "9.99"}]
    basket.send(
        "setbasket", {"id": "b-1", "total": "39.99", "cur": "GBP", "size": 3, "url": "/basket", "lis": lines}
    )
    browse = Browser(client, tenant)
    browse.send("identify", {"uiid": "browse@example.org"})
    browse.send("viewproduct", {"pid": "p-3"})
    browse.send("viewproduct", {"pid": "p-4"})
    bought = Browser(client, tenant)
    bought.send("identify", {"uiid": "bought@example.org"})
    bought.send(
        "setbasket",
        {"id": "b-2", "total": "5", "cur": "GBP", "size": 1, "lis": [{"pid": "p-1", "q": 1, "tot": "5"}]},
    )
    bought.send("transaction", {"tid": "order-9"})
    anonymous = Browser(client, tenant)  # never identified: nobody to send a campaign to
    anonymous.send(
        "setbasket",
        {"id": "b-3", "total": "5", "cur": "GBP", "size": 1, "lis": [{"pid": "p-1", "q": 1, "tot": "5"}]},
    )

    found = eventually(
        lambda: len(abandonment_events(client, tenant)) == 2 and abandonment_events(client, tenant),
        "two events",
    )
    by_type = {e["event_type"]: e for e in found}
    [basket_profile] = read(client, tenant, "/v2/profiles?email=basket@example.org")
    [browse_profile] = read(client, tenant, "/v2/profiles?email=browse@example.org")
    assert by_type["abandoned_basket"]["profile_id"] == basket_profile["id"]
    assert by_type["abandoned_basket"]["properties"]["total"] == 39.99
    assert by_type["abandoned_basket"]["properties"]["currency"] == "GBP"
    assert by_type["abandoned_basket"]["properties"]["lines"] == [
        {"product_id": "p-1", "variant_id": "p-1-red", "quantity": 2, "total": 30},
        {"product_id": "p-2", "quantity": 1, "total": 9.99},
    ]
    assert by_type["browse_abandoned"]["profile_id"] == browse_profile["id"]
    assert by_type["browse_abandoned"]["properties"]["products"] == ["p-3", "p-4"]
    timeline = read(client, tenant, f"/v2/profiles/{basket_profile['id']}/activity")
    assert timeline[0]["type"] == "abandoned_basket" and timeline[0]["channel"] == "api"
    time.sleep(2.5)  # more sweeps: each session ends once, its event is not sent again
    assert len(abandonment_events(client, tenant)) == 2
