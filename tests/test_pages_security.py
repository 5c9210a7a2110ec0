"""The HTML pages Patron serves, as a browser must be able to trust them: every one (the unsubscribe
page, the preference centre, a refused link, the tracking collector's empty page, Swagger UI) carries
a Content-Security-Policy, ``nosniff``, ``Referrer-Policy: no-referrer`` and frame denial; the
preference centre saves only a form that came from its own page (its token, and not posted from
another site), while the one-click unsubscribe takes a mail client's POST from anywhere (RFC 8058).
The preference centre is driven once in Debian Chromium, which must report no policy violation."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import Tenant, eventually, push, served_account
from patron.config import Settings
from patron.tracking import wire
from support.app import Client, app_fixtures
from support.http import barrier, read
from test_docs_page import CHROMIUM, FLAGS
from test_email_links import (
    ANN,
    contact,
    form_of,
    form_token,
    hrefs,
    path,
    preferences_link,
    profile_of,
    sent,
    subscribed_by_email_and_sms,
    template,
)

shared, client, make_tenant = app_fixtures()
EVIL = "https://evil.example"


def assert_secure_page(response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("text/html"), response.headers
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in response.headers["content-security-policy"].split(";")
    }
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["style-src"] == ["'self'"]
    assert not any("unsafe" in value or value == "*" for values in policy.values() for value in values)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


def unsubscribe_link(client: Client, tenant: Tenant) -> str:
    chosen = template(client, tenant, '<a href="{{ unsubscribe_url }}">Unsubscribe</a>')
    [link] = hrefs(sent(client, tenant, template_id=chosen)["html"])
    return path(link)


def test_every_html_page_carries_the_security_headers(client: Client, tenant: Tenant) -> None:
    subscribed_by_email_and_sms(client, tenant)
    centre = path(preferences_link(client, tenant))
    shown = client.get(centre)
    unsubscribe = unsubscribe_link(client, tenant)
    beacon = wire.encode({"cid": "a" * 16, "sid": "b" * 13, "type": "pageview", "channel": "system", "d": {}})
    pages = {
        "preference centre": shown,
        "preferences saved": client.post(
            centre, data={**form_of(shown.text), "form_token": form_token(shown.text)}
        ),
        "form refused": client.post(centre, data=form_of(shown.text)),
        "unsubscribe page": client.get(unsubscribe),
        "unsubscribed": client.post(unsubscribe),
        "refused link": client.get("/c/not-a-link"),
        "refused preference link": client.get(f"/p/{tenant.hash}/nobody.0"),
        "collector's page": client.post(f"/track/v3/{tenant.hash}/event.html", data={"data": beacon}),
        "Swagger UI": client.get("/v2/docs"),
    }
    assert {name: r.status_code for name, r in pages.items()} == {
        **dict.fromkeys(pages, 200),
        "form refused": 403,
        "refused link": 400,
        "refused preference link": 400,
    }
    for response in pages.values():
        assert_secure_page(response)
    for name in ("preference centre", "unsubscribe page"):
        assert "<style" not in pages[name].text and "style=" not in pages[name].text
        assert "<script" not in pages[name].text
        assert "form-action 'self'" in pages[name].headers["content-security-policy"]

    # what the pages load is this server's, and served as what it is
    [stylesheet] = re.findall(r'<link rel="stylesheet" href="([^"]+)">', shown.text)
    css = client.get(stylesheet)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert css.headers["x-content-type-options"] == "nosniff" and "fieldset" in css.text
    docs = pages["Swagger UI"].text
    assert "<script>" not in docs and "<style" not in docs  # nothing inline: the policy runs only files
    scripts = re.findall(r'<script src="([^"]+)"', docs)
    assert all(s.startswith("/v2/docs/") for s in scripts) and "/v2/docs/init.js" in scripts
    init = client.get("/v2/docs/init.js")
    assert init.status_code == 200 and init.headers["content-type"].startswith("text/javascript")
    assert "script-src 'self'" in pages["Swagger UI"].headers["content-security-policy"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": "https://localhost:1"},  # another port is another origin
        {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},  # a browser that sends no Origin says where the form was
        {"Sec-Fetch-Site": "same-site"},  # a neighbour on a sibling subdomain is another site's page
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_a_cross_site_post_to_the_preference_centre_changes_nothing(
    client: Client, tenant: Tenant, headers: dict[str, str]
) -> None:
    """The form another site's page would post: with the page's own token even, it is refused."""
    subscribed_by_email_and_sms(client, tenant)
    centre = path(preferences_link(client, tenant))
    shown = client.get(centre).text
    unticked = {"email_shown": "on", "sms_shown": "on", "form_token": form_token(shown)}  # both unticked
    refused = client.post(centre, data=unticked, headers=headers)
    assert refused.status_code == 403 and "not saved" in refused.text
    assert_secure_page(refused)
    barrier(client, tenant)
    profile = profile_of(client, tenant)
    assert profile["marketing_optin"] is True and profile["channels"]["sms"]["status"] == "subscribed"
    assert read(client, tenant, "/v2/unsubscribes") == []


@pytest.mark.parametrize(
    "token",
    [None, "", "0" * 32, "not even hex", "the other profile's"],
)
def test_a_form_without_its_pages_token_changes_nothing(
    client: Client, tenant: Tenant, token: str | None
) -> None:
    subscribed_by_email_and_sms(client, tenant)
    centre = path(preferences_link(client, tenant))
    if token == "the other profile's":
        push(client, tenant, [{"@type": "contact", "id": "c-bob", "email": "bob@example.org"}])
        other = template(client, tenant, '<a href="{{ preferences_url }}">Yours</a>')
        [link] = hrefs(sent(client, tenant, template_id=other, to={"email": "bob@example.org"})["html"])
        token = form_token(client.get(path(link)).text)
    form = {"email_shown": "on", "sms_shown": "on", **({} if token is None else {"form_token": token})}
    refused = client.post(centre, data=form)
    assert refused.status_code == 403 and "not saved" in refused.text
    barrier(client, tenant)
    assert profile_of(client, tenant)["marketing_optin"] is True
    assert read(client, tenant, "/v2/unsubscribes") == []


def test_the_preference_centre_takes_its_own_form_from_this_origin(client: Client, tenant: Tenant) -> None:
    """``Origin`` this server's (or ``null``, which a browser sends from a no-referrer page), and
    ``Sec-Fetch-Site: same-origin`` or ``none``."""
    subscribed_by_email_and_sms(client, tenant)
    centre = path(preferences_link(client, tenant))
    shown = client.get(centre).text
    own = Settings().base_url
    unticked = {"email_shown": "on", "sms_shown": "on", "sms": "on", "form_token": form_token(shown)}
    for headers in (
        {"Origin": own, "Sec-Fetch-Site": "same-origin"},
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
        {"Origin": own.upper() + "/"},
        {"Sec-Fetch-Site": "none"},
    ):
        saved = client.post(centre, data=unticked, headers=headers)
        assert saved.status_code == 200 and "Your preferences are saved." in saved.text, headers
    eventually(lambda: profile_of(client, tenant)["marketing_optin"] is False, "email unsubscribed")


def test_the_one_click_unsubscribe_takes_a_mail_clients_post_from_anywhere(
    client: Client, tenant: Tenant
) -> None:
    contact(client, tenant, marketing_optin="EXPLICITLY_OPTEDIN")
    link = unsubscribe_link(client, tenant)
    done = client.post(
        link,
        content=b"List-Unsubscribe=One-Click",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "https://mail.example",
            "Sec-Fetch-Site": "cross-site",
        },
    )
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    [unsubscribe] = eventually(lambda: read(client, tenant, "/v2/unsubscribes"), "the unsubscribe")
    assert (unsubscribe["email_address"], unsubscribe["type"]) == (ANN, "list_unsubscribe")


def test_the_preference_centre_in_chromium_under_its_policy(
    tmp_path: Any, patron_environment: dict[str, str]
) -> None:
    """Open the link, untick marketing email and save, tick it again and save, and see each saved:
    the stylesheet applies, the browser's own posts are taken, and the console reports no policy
    violation."""
    with served_account(tmp_path, patron_environment) as (server, tenant), server.client() as http:
        subscribed_by_email_and_sms(http, tenant)
        link = preferences_link(http, tenant)
        messages: list[str] = []
        posted: list[dict[str, str]] = []
        answered: list[tuple[str, int]] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                page = browser.new_page(ignore_https_errors=True)
                page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
                page.on(
                    "request",
                    lambda request: posted.append(request.headers) if request.method == "POST" else None,
                )
                page.on("response", lambda response: answered.append((response.url, response.status)))
                page.goto(link)
                expect(page.get_by_role("heading", level=1)).to_have_text("Your preferences")
                width = page.evaluate("getComputedStyle(document.body).maxWidth")
                assert width == "576px"  # 36rem: the stylesheet applies under the policy
                email = page.get_by_label(f"Marketing email to {ANN}")
                sms = page.get_by_label("Marketing text messages (SMS) to +447700900123")
                email.uncheck()
                page.get_by_role("button", name="Save my preferences").click()
                expect(page.get_by_role("status")).to_have_text("Your preferences are saved.")
                expect(email).not_to_be_checked()
                email.check()
                page.get_by_role("button", name="Save my preferences").click()
                expect(page.get_by_role("status")).to_have_text("Your preferences are saved.")
                expect(email).to_be_checked()
                expect(sms).to_be_checked()
            finally:
                browser.close()
        assert not [m for m in messages if "Content Security Policy" in m], messages
        assert {urlsplit(url).path for url, status in answered if status >= 400} <= {"/favicon.ico"}
        # the browser's own posts: Origin null (the page's referrer policy) or this server's
        assert [h.get("origin") in ("null", server.url) for h in posted] == [True, True], posted
        eventually(
            lambda: (
                [u["type"] for u in read(http, tenant, "/v2/unsubscribes?type=preferences_centre")]
                == ["preferences_centre"]
            ),
            "the unsubscribe",
        )
