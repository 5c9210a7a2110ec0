"""The links of email, for the people who receive it, with real parts: verified links (the click
recorded on the recipient's profile, then redirected; refused with a plain page when altered, expired
or leading off the account's link domains), the preference centre (driven in Debian Chromium with
JavaScript off, and by plain form posts) and the unsubscribe link of a template body."""

from __future__ import annotations

import base64
import html
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import select

from conftest import Tenant, eventually, push, run_cli, served_account
from patron.email import links
from patron.store.schema import accounts
from support.app import App, Client, app_fixtures
from support.http import barrier, read
from test_docs_page import CHROMIUM, FLAGS

shared, client, make_tenant = app_fixtures()
SENDER = {"email": "news@example.com", "name": "Example Shop"}
ANN = "ann@example.org"


def template(client: Client, tenant: Tenant, html_body: str, text: str | None = None) -> int:
    body = {"subject": "News", "html": html_body, **({"text": text} if text else {})}
    response = client.post("/v2/templates", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    found: int = response.json()["id"]
    return found


def sent(client: Client, tenant: Tenant, **body: Any) -> dict[str, Any]:
    """Send (sandbox: rendered and kept, not delivered) and read the message back."""
    body.setdefault("to", {"email": ANN})
    response = client.post(
        "/v2/transactional-email/send", json={"from": SENDER, "sandbox": True, **body}, headers=tenant.headers
    )
    assert response.status_code == 202, response.text
    message: dict[str, Any] = read(client, tenant, f"/v2/transactional-email/{response.json()['message_id']}")
    return message


def hrefs(body: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r"""(?<![\w-])href=["']([^"']*)["']""", body)]


def path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def landing(location: str) -> tuple[str, str]:
    """Where a verified link sent the browser: the target, and the identity it carries for the tag."""
    parts = urlsplit(location)
    pairs = [pair.partition("=") for pair in parts.query.split("&") if pair]
    identity = "".join(value for name, _, value in pairs if name == links.IDENTITY_PARAMETER)
    query = "&".join("".join(pair) for pair in pairs if pair[0] != links.IDENTITY_PARAMETER)
    return urlunsplit(parts._replace(query=query)), identity


def profile_of(client: Client, tenant: Tenant, email: str = ANN) -> dict[str, Any]:
    [found] = read(client, tenant, f"/v2/profiles?email={email}")
    profile: dict[str, Any] = found
    return profile


def assert_refused(response: Any, reason: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert reason in response.text


def contact(client: Client, tenant: Tenant, **fields: Any) -> None:
    push(client, tenant, [{"@type": "contact", "id": "c-ann", "email": ANN, **fields}])


# verified links ---------------------------------------------------------------------------------


def test_links_become_verified_links_that_count_on_the_profile_and_redirect(
    client: Client, tenant: Tenant
) -> None:
    contact(client, tenant)
    chosen = template(
        client,
        tenant,
        '<a href="https://shop.example.com/sale?a=1&amp;b=2">Sale</a>'
        "<a class=big href='https://example.com/'>Home</a>"
        '<a href="mailto:help@example.com">Help</a><a href="/relative">Here</a>'
        '<a data-href="https://shop.example.com/kept" href="{{ link }}">Data</a>'
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a><a href="{{ preferences_url }}">Preferences</a>',
        text="The sale: https://shop.example.com/sale",
    )
    message = sent(client, tenant, template_id=chosen, data={"link": "https://example.com/x?<y>"})
    sale, home, mail, relative, data, unsubscribe, preferences = hrefs(message["html"])
    base = message["unsubscribe_url"].split("/u/")[0]
    assert [mail, relative] == ["mailto:help@example.com", "/relative"]
    assert unsubscribe == message["unsubscribe_url"]
    assert preferences.startswith(f"{base}/p/{tenant.hash}/{profile_of(client, tenant)['id']}.")
    assert 'data-href="https://shop.example.com/kept"' in message["html"]
    assert message["text"] == "The sale: https://shop.example.com/sale"  # text bodies are as written
    for link in (sale, home, data):
        assert link.startswith(f"{base}/c/{message['id']}.")

    redirected = [client.get(path(link), follow_redirects=False) for link in (sale, home, data)]
    assert [r.status_code for r in redirected] == [302, 302, 302]
    landed = [landing(r.headers["location"]) for r in redirected]
    assert [target for target, _ in landed] == [
        "https://shop.example.com/sale?a=1&b=2",
        "https://example.com/",
        "https://example.com/x?%3Cy%3E",  # as a browser sends it
    ]
    profile_id = profile_of(client, tenant)["id"]  # the recipient, named for the website tag
    assert all(identity.startswith(f"{profile_id}.") for _, identity in landed)
    clicked = eventually(
        lambda: (p := profile_of(client, tenant))["stats"]["email_clicks"] == 3 and p, "clicks recorded"
    )
    assert clicked["dates"]["last_email_click"] is not None
    export = read(client, tenant, f"/v2/profiles/{clicked['id']}/export")
    assert [c["url"] for c in export["email_clicks"]] == [
        "https://shop.example.com/sale?a=1&b=2",
        "https://example.com/",
        "https://example.com/x?%3Cy%3E",
    ]


def _swap_target(token: str) -> str:
    message_id, expires, _, signature = token.split(".")
    evil = base64.urlsafe_b64encode(b"https://evil.example.net/").rstrip(b"=").decode()
    return f"{message_id}.{expires}.{evil}.{signature}"


@pytest.mark.parametrize(
    "tamper",
    [
        _swap_target,
        lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"),  # the signature
        lambda t: t.replace(".", ".9", 1),  # the expiry
        lambda t: ("1" if t[0] == "0" else "0") + t[1:],  # the message id
        lambda t: t.rsplit(".", 1)[0],  # cut short
        lambda t: "x",
        lambda t: t * 20,
        lambda t: "%00." + t,
    ],
)
def test_a_tampered_link_is_refused_with_a_plain_page_and_records_nothing(
    client: Client, tenant: Tenant, tamper: Callable[[str], str]
) -> None:
    contact(client, tenant)
    message = sent(client, tenant, html='<a href="https://shop.example.com/">Shop</a>', subject="x")
    [link] = hrefs(message["html"])
    token = link.rsplit("/", 1)[1]
    refused = client.get(f"/c/{tamper(token)}", follow_redirects=False)
    assert_refused(refused, "not valid")
    assert "evil" not in refused.text
    barrier(client, tenant)
    assert profile_of(client, tenant)["stats"]["email_clicks"] == 0


def test_an_expired_link_is_refused(shared: App, client: Client, tenant: Tenant) -> None:
    message = sent(client, tenant, html="<p>x</p>", subject="x")
    key = shared.store.read_blocking(
        lambda conn: conn.execute(
            select(accounts.c.link_secret).where(accounts.c.hash == tenant.hash)
        ).scalar()
    )
    base = message["unsubscribe_url"].split("/u/")[0]

    def signed(expires: int) -> str:
        return path(links.click_url(base, key, message["id"], "https://shop.example.com/", expires))

    assert client.get(signed(int(time.time()) + 60), follow_redirects=False).status_code == 302
    assert_refused(client.get(signed(int(time.time()) - 1), follow_redirects=False), "expired")


def test_a_link_off_the_accounts_domains_is_refused(shared: App, client: Client, tenant: Tenant) -> None:
    targets = [
        "https://shop.example.com/a",  # a subdomain of the sender's domain
        "https://elsewhere.example.net/b",
        "https://example.com.evil.net/c",
        "https://notexample.com/d",
    ]
    body = "".join(f'<a href="{t}">{i}</a>' for i, t in enumerate(targets))
    tracked = [path(h) for h in hrefs(sent(client, tenant, html=body, subject="x")["html"])]

    def outcomes() -> list[int]:
        return [client.get(t, follow_redirects=False).status_code for t in tracked]

    assert outcomes() == [302, 400, 400, 400]  # no domains set: the sender's (example.com)
    refused = client.get(tracked[1], follow_redirects=False)
    assert_refused(refused, "a site we do not send people to")
    assert "elsewhere" not in refused.text

    cli = run_cli(
        shared.data_dir,
        "accounts",
        "set-link-domains",
        "--account",
        tenant.hash,
        "Example.NET",
        environment=shared.environment,
    )
    assert "example.net" in cli.stdout
    assert outcomes() == [400, 302, 400, 400]
    wrong = run_cli(
        shared.data_dir,
        "accounts",
        "set-link-domains",
        "--account",
        tenant.hash,
        "not a domain",
        check=False,
        environment=shared.environment,
    )
    assert wrong.returncode != 0 and "not a domain name: not a domain" in wrong.stderr
    assert outcomes() == [400, 302, 400, 400]  # the refused change changed nothing
    run_cli(
        shared.data_dir,
        "accounts",
        "set-link-domains",
        "--account",
        tenant.hash,
        environment=shared.environment,
    )
    assert outcomes() == [302, 400, 400, 400]


# the unsubscribe link of a body -----------------------------------------------------------------


def test_the_unsubscribe_link_of_a_body_records_a_link_unsubscribe(client: Client, tenant: Tenant) -> None:
    contact(client, tenant, marketing_optin="EXPLICITLY_OPTEDIN")
    chosen = template(client, tenant, '<a href="{{ unsubscribe_url }}">Unsubscribe</a>')
    [link] = hrefs(sent(client, tenant, template_id=chosen)["html"])
    page = client.get(path(link))
    assert page.status_code == 200
    [action] = re.findall(r'action="([^"]+)"', page.text)
    done = client.post(action)  # the page's button: a plain form post
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    [unsubscribe] = eventually(lambda: read(client, tenant, "/v2/unsubscribes"), "the unsubscribe")
    assert (unsubscribe["email_address"], unsubscribe["type"]) == (ANN, "link_unsubscribe")
    assert profile_of(client, tenant)["marketing_optin"] is False


# the preference centre --------------------------------------------------------------------------


def preferences_link(client: Client, tenant: Tenant) -> str:
    chosen = template(client, tenant, '<a href="{{ preferences_url }}">Your preferences</a>')
    [link] = hrefs(sent(client, tenant, template_id=chosen)["html"])
    return link


def subscribed_by_email_and_sms(client: Client, tenant: Tenant) -> None:
    """Ann: marketing email and SMS allowed."""
    contact(client, tenant, marketing_optin="EXPLICITLY_OPTEDIN", phone_number="+447700900123")
    sms = {"sms": {"allow_marketing": True}}
    record = {"@type": "contact", "id": "c-ann", "@collection": "double_optin:sms", "email": ANN}
    push(client, tenant, [{**record, "channels": sms}])


def form_of(page: str) -> dict[str, str]:
    """What a browser would post: hidden fields (but the page's token), and the boxes that are ticked."""
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="(\w+)"', page))
    fields.pop("form_token")
    ticked = re.findall(r'<input type="checkbox" id="\w+" name="(\w+)" value="on" checked>', page)
    return {**fields, **dict.fromkeys(ticked, "on")}


def form_token(page: str) -> str:
    """The token of the preference centre's form, which a save must send back."""
    [token] = re.findall(r'<input type="hidden" name="form_token" value="(\w+)"', page)
    return token


def test_the_preference_centre_saves_what_changed_by_plain_form_posts(client: Client, tenant: Tenant) -> None:
    subscribed_by_email_and_sms(client, tenant)
    link = path(preferences_link(client, tenant))
    page = client.get(link)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert form_of(page.text) == {"email_shown": "on", "sms_shown": "on", "email": "on", "sms": "on"}
    assert ANN in page.text and "+447700900123" in page.text
    token = {"form_token": form_token(page.text)}

    saved = client.post(link, data={**token, "email_shown": "on", "sms_shown": "on", "email": "on"})  # no SMS
    assert saved.status_code == 200 and "Your preferences are saved." in saved.text
    assert form_of(saved.text) == {"email_shown": "on", "sms_shown": "off", "email": "on"}
    eventually(
        lambda: profile_of(client, tenant)["channels"]["sms"]["status"] == "unsubscribed", "SMS unsubscribed"
    )
    [unsubscribe] = read(client, tenant, "/v2/unsubscribes?type=preferences_centre")
    assert unsubscribe["email_address"] is None  # an SMS unsubscribe
    assert unsubscribe["profile_id"] == profile_of(client, tenant)["id"]
    assert profile_of(client, tenant)["marketing_optin"] is True

    # an unchanged form and garbage record nothing; a box ticked again subscribes again
    client.post(link, data={**token, **form_of(client.get(link).text)})
    for garbage in (b"\xff\x00==&&email_shown=maybe&email", b"sms_shown=on&sms_shown=off&sms=on" * 1000):
        form = {"content-type": "application/x-www-form-urlencoded"}
        answer = client.post(
            link, content=garbage + f"&form_token={token['form_token']}".encode(), headers=form
        )
        assert answer.status_code == 200 and "Your preferences are saved." in answer.text
    client.post(link, data={**token, "email_shown": "on", "sms_shown": "off", "email": "on", "sms": "on"})
    eventually(
        lambda: profile_of(client, tenant)["channels"]["sms"]["status"] == "subscribed", "SMS subscribed"
    )
    export = read(client, tenant, f"/v2/profiles/{profile_of(client, tenant)['id']}/export")
    centre = [(c["channel"], c["status"]) for c in export["consent"] if c["source"] == "preferences_centre"]
    assert centre == [("sms", "unsubscribed"), ("sms", "subscribed")]

    # the preference centre outranks a later push through the API, as in Ometria
    client.post(link, data={**token, "email_shown": "on", "sms_shown": "on", "sms": "on"})  # email unticked
    eventually(lambda: profile_of(client, tenant)["marketing_optin"] is False, "email unsubscribed")
    contact(client, tenant, marketing_optin="EXPLICITLY_OPTEDIN")
    assert profile_of(client, tenant)["marketing_optin"] is False


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p[:-1] + ("0" if p[-1] != "0" else "1"),
        lambda p: p.rsplit(".", 1)[0],
        lambda p: p.replace("/p/", "/p/aaaaaaaaaaaa", 1),
        lambda p: re.sub(r"/p/\w+/", "/p/{other}/", p),  # another account's hash
        lambda p: p.replace("/p/", "/p/%00", 1) + "%00",
    ],
)
def test_a_tampered_preference_link_is_refused(
    client: Client, tenant: Tenant, make_tenant: Callable[..., Tenant], tamper: Callable[[str], str]
) -> None:
    subscribed_by_email_and_sms(client, tenant)
    other = make_tenant("another shop")
    sent(client, other, html="x", subject="x")  # the other account has a link key too
    link = tamper(path(preferences_link(client, tenant))).replace("{other}", other.hash)
    assert_refused(client.get(link), "not valid")
    assert_refused(client.post(link, data={"email_shown": "on", "sms_shown": "on"}), "not valid")
    barrier(client, tenant)
    assert read(client, tenant, "/v2/unsubscribes") == []


def test_the_preference_link_of_an_anonymised_person_no_longer_works(client: Client, tenant: Tenant) -> None:
    subscribed_by_email_and_sms(client, tenant)
    link = path(preferences_link(client, tenant))
    request = client.post("/v2/data-deletion-requests", json={"email": ANN}, headers=tenant.headers)
    assert request.status_code == 202, request.text
    eventually(
        lambda: (
            read(client, tenant, f"/v2/data-deletion-requests/{request.json()['id']}")["status"]
            == "completed"
        ),
        "anonymised",
    )
    assert_refused(client.get(link), "no longer valid")


def test_the_preference_centre_in_a_browser_without_javascript(
    tmp_path: Any, patron_environment: dict[str, str]
) -> None:
    """Open the link, untick marketing email with the keyboard, save, and see the unsubscribe."""
    with served_account(tmp_path, patron_environment) as (server, tenant), server.client() as http:
        subscribed_by_email_and_sms(http, tenant)
        link = preferences_link(http, tenant)
        assert link.startswith(server.url)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                page = browser.new_page(ignore_https_errors=True, java_script_enabled=False)
                page.goto(link)
                assert page.locator("html").get_attribute("lang") == "en"
                expect(page.get_by_role("heading", level=1)).to_have_text("Your preferences")
                email = page.get_by_label(f"Marketing email to {ANN}")
                sms = page.get_by_label("Marketing text messages (SMS) to +447700900123")
                expect(email).to_be_checked()
                expect(sms).to_be_checked()
                page.keyboard.press("Tab")  # the first control is the email box
                expect(email).to_be_focused()
                page.keyboard.press("Space")
                page.get_by_role("button", name="Save my preferences").click()
                expect(page.get_by_role("status")).to_have_text("Your preferences are saved.")
                expect(email).not_to_be_checked()
                expect(sms).to_be_checked()
                page.reload()  # what is stored, once the worker applied it
                expect(page.get_by_label(f"Marketing email to {ANN}")).not_to_be_checked()
            finally:
                browser.close()
        [unsubscribe] = eventually(
            lambda: read(http, tenant, "/v2/unsubscribes?type=preferences_centre"), "the unsubscribe"
        )
        assert (unsubscribe["email_address"], unsubscribe["type"]) == (ANN, "preferences_centre")
        assert profile_of(http, tenant)["marketing_optin"] is False
        assert profile_of(http, tenant)["channels"]["sms"]["status"] == "subscribed"
