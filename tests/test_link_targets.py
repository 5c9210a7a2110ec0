"""The targets of verified links, read as browsers read them (the WHATWG URL standard): a target with
userinfo or a backslash, where people and Python read one host and browsers go to another, never
becomes a verified link and is refused if one names it; non-ASCII targets are percent-encoded and
IDNA-encoded end to end; and a verified link hands the website tag the recipient's identity, a signed
token that ``identify`` accepts where a bare profile id links nothing."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from conftest import Tenant, eventually, served_account
from patron import accounts as accounts_module
from patron.email import links
from patron.store.schema import accounts, visitors
from support.app import App, Client, app_fixtures
from support.http import barrier, read
from test_email_links import assert_refused, contact, hrefs, landing, path, profile_of, sent
from test_tracking import Browser
from test_tracking_browser import browser_page, demo_shop, stored, visit

shared, client, make_tenant = app_fixtures()


def key_of(app: App, tenant: Tenant) -> str:
    found: str = app.store.read_blocking(
        lambda conn: conn.execute(
            select(accounts.c.link_secret).where(accounts.c.hash == tenant.hash)
        ).scalar()
    )
    return found


def clicks(client: Client, tenant: Tenant) -> int:
    barrier(client, tenant)
    found: int = profile_of(client, tenant)["stats"]["email_clicks"]
    return found


# targets that hide their host -------------------------------------------------------------------

HIDING = [
    "https://evil.example\\@example.com/",  # Python reads example.com; browsers go to evil.example
    "https://evil.example&#92;@example.com/",  # the same, the backslash as a character reference
    "https://example.com\\evil",  # a backslash anywhere
    "https://evil.example@example.com/",  # userinfo
    "https://user:secret@example.com/",
    "https://evil.example%5C@example.com/",
    "HTTPS://evil.exa\tmple@example.com/",  # a tab, which browsers drop
]


@pytest.mark.parametrize("target", HIDING)
def test_a_target_with_userinfo_or_a_backslash_never_becomes_a_verified_link(
    client: Client, tenant: Tenant, target: str
) -> None:
    contact(client, tenant)
    message = sent(
        client, tenant, subject="x", html=f'<a href="{target}">Shop</a><a href="https://example.com/">Ok</a>'
    )
    refused, fine = hrefs(message["html"])
    base = message["unsubscribe_url"].split("/u/")[0]
    assert refused == f"{base}/c/refused"
    assert "evil" not in message["html"] and "secret" not in message["html"]
    assert fine.startswith(f"{base}/c/{message['id']}.")
    answer = client.get(path(refused), follow_redirects=False)
    assert_refused(answer, "hides the site it leads to")
    assert clicks(client, tenant) == 0


@pytest.mark.parametrize(
    "target",
    ["https://evil.example\\@example.com/", "https://evil.example@example.com/", "https://a:b@example.com"],
)
def test_a_signed_target_with_userinfo_or_a_backslash_is_refused_when_clicked(
    shared: App, client: Client, tenant: Tenant, target: str
) -> None:
    """As a link signed before this rule, or by hand with the key, would be."""
    contact(client, tenant)
    message = sent(client, tenant, subject="x", html="<p>x</p>")
    base = message["unsubscribe_url"].split("/u/")[0]
    link = links.click_url(base, key_of(shared, tenant), message["id"], target, 4_000_000_000)
    answer = client.get(path(link), follow_redirects=False)
    assert_refused(answer, "hides the site it leads to")
    assert "evil" not in answer.text
    assert clicks(client, tenant) == 0


# non-ASCII targets ------------------------------------------------------------------------------


def test_non_ascii_targets_are_encoded_as_browsers_encode_them(
    shared: App, client: Client, tenant: Tenant
) -> None:
    contact(client, tenant)
    shared.store.write_blocking(
        lambda conn: accounts_module.set_link_domains(
            conn, tenant.hash, ["example.com", "xn--bcher-kva.example"]
        )
    )
    body = (
        '<a href="https://example.com/ü€?q=ü#ß">Path</a>'
        '<a href="https://Bücher.EXAMPLE/Straße">Host</a>'
        '<a href="https://xn--bcher-kva.example./x">Final dot</a>'
        '<a href="https://bücher.example.net/">Elsewhere</a>'
    )
    followed = [
        client.get(path(link), follow_redirects=False)
        for link in hrefs(sent(client, tenant, subject="x", html=body)["html"])
    ]
    assert [r.status_code for r in followed] == [302, 302, 302, 400]
    targets = [landing(r.headers["location"])[0] for r in followed[:3]]
    assert targets == [
        "https://example.com/%C3%BC%E2%82%AC?q=%C3%BC#%C3%9F",
        "https://xn--bcher-kva.example/Stra%C3%9Fe",
        "https://xn--bcher-kva.example./x",
    ]
    assert all(r.headers["location"].isascii() for r in followed[:3])
    export = eventually(
        lambda: (
            (e := read(client, tenant, f"/v2/profiles/{profile_of(client, tenant)['id']}/export"))[
                "email_clicks"
            ]
            and len(e["email_clicks"]) == 3
            and e
        ),
        "three clicks",
    )
    assert [c["url"] for c in export["email_clicks"]] == targets  # recorded as followed, no identity


# the identity a verified link hands the website tag ---------------------------------------------


def test_a_verified_link_hands_the_tag_a_signed_identity_and_a_bare_profile_id_identifies_nobody(
    client: Client, tenant: Tenant
) -> None:
    contact(client, tenant)
    html = '<a href="https://example.com/p?om_profile=123&amp;a=1#top">Shop</a>'
    message = sent(client, tenant, subject="x", html=html)
    [link] = hrefs(message["html"])
    location = client.get(path(link), follow_redirects=False).headers["location"]
    profile = profile_of(client, tenant)
    parts = urlsplit(location)
    query = dict(pair.split("=", 1) for pair in parts.query.split("&"))
    assert (parts.netloc, parts.path, parts.fragment) == ("example.com", "/p", "top")
    assert list(query) == ["a", links.IDENTITY_PARAMETER]  # the target's own om_profile gives way
    identity = query[links.IDENTITY_PARAMETER]
    assert identity.startswith(f"{profile['id']}.")

    bare = Browser(client, tenant)
    bare.send("identify", {"uiid": f"omid:{profile['id']}"})
    barrier(client, tenant)
    assert profile_of(client, tenant)["stats"]["visits"] == 0

    landed = Browser(client, tenant)
    landed.send("pageview", {"type": "homepage"})
    landed.send("identify", {"uiid": f"omid:{identity}"})
    eventually(lambda: profile_of(client, tenant)["stats"]["visits"] == 1, "the visit linked")


def test_a_message_to_nobody_with_a_profile_hands_no_identity(client: Client, tenant: Tenant) -> None:
    html = '<a href="https://example.com/">x</a>'
    message = sent(client, tenant, to={"email": "stranger@example.org"}, subject="x", html=html)
    [link] = hrefs(message["html"])
    answer = client.get(path(link), follow_redirects=False)
    assert answer.headers["location"] == "https://example.com/"


def test_the_tag_identifies_the_visitor_by_the_identity_a_click_hands_it(
    tmp_path: Any, patron_environment: dict[str, str]
) -> None:
    """In Chromium, on a shop carrying the tag: landing with ``om_profile`` from a click links the
    visitor to the recipient's profile, and a second click's new token keeps the same visitor."""
    with served_account(tmp_path, patron_environment) as (server, tenant), server.client() as http:
        contact(http, tenant)
        html = '<a href="https://example.com/">Shop</a>'
        [link] = hrefs(sent(http, tenant, subject="x", html=html)["html"])

        def identity() -> str:
            _, token = landing(http.get(path(link), follow_redirects=False).headers["location"])
            return token

        first = identity()
        time.sleep(1.1)  # another second, another expiry: another token for the same person
        second = identity()
        assert first != second
        with demo_shop(f"{server.url}/tags/{tenant.hash}.js") as shop, browser_page() as page:
            visit(page, f"{shop}/?om_profile={first}")
            before = page.evaluate("ometria._debug().cookie")
            assert before["uiid"] == f"omid:{first}"
            visit(page, f"{shop}/shoes?om_profile={second}")
            after = page.evaluate("ometria._debug().cookie")
            assert (after["uiid"], after["cid"]) == (f"omid:{second}", before["cid"])
        profile = eventually(
            lambda: (p := profile_of(http, tenant))["stats"]["visits"] == 1 and p, "the visit linked"
        )
    [visitor] = stored(server, patron_environment, visitors)
    assert visitor.profile == profile["id"]
