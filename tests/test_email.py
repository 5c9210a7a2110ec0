"""Transactional email with real parts: templates through HTTP, ``POST /v2/transactional-email/send``,
and delivery from the worker's outbox to a real SMTP server (aiosmtpd on loopback): the MIME structure,
headers and attachments as received; names that read as more addresses sent quoted to the one
envelope recipient (as the server records it), and names, subjects and addresses a header cannot
carry refused; retries then failure when the server refuses or is down; the outbox surviving a
restart; messages kept, unsent, without SMTP.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import Connection, func, insert, select

from conftest import Tenant, create_tenant_cli, free_port, push, start_server
from patron.store.schema import accounts, messages
from patron.tls import local_certificates
from support.app import App, Client, running_app
from support.http import assert_problem, read

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
SENDER = {"email": "shop@example.com", "name": "Example Shop"}


class Inbox:
    """An aiosmtpd handler that keeps what it receives, or answers with ``refuse`` (code, text)."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.raw: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.sessions: list[tuple[bool, bool]] = []  # (over TLS, authenticated) of each message
        self.refuse: str | None = None
        self.hang = 0.0  # seconds to keep the client waiting before answering DATA
        self.waiting = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.waiting = True
        await asyncio.sleep(self.hang)
        if self.refuse:
            return self.refuse
        message = parse(envelope.content)
        self.received.append(message)
        self.raw.append(envelope.content)
        encrypted = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.sessions.append((encrypted, bool(session.authenticated)))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def parse(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def headers(content: bytes) -> EmailMessage:
    """A received message's headers alone, which may be UTF-8 (SMTPUTF8)."""
    head = content.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    message = email.message_from_string(head + "\r\n\r\n", policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory,
    new_database_url: Callable[[], str | None],
    smtp: tuple[Inbox, int],
) -> Iterator[App]:
    url = f"smtp://127.0.0.1:{smtp[1]}"
    with running_app(
        tmp_path_factory.mktemp("app"), new_database_url(), smtp_url=url, smtp_backoff=0.05
    ) as app:
        yield app


@pytest.fixture(scope="module")
def client(shared: App) -> Client:
    return shared.client


@pytest.fixture(scope="module")
def make_tenant(shared: App) -> Callable[..., Tenant]:
    return shared.tenant


@pytest.fixture
def inbox(smtp: tuple[Inbox, int]) -> Iterator[Inbox]:
    smtp[0].received.clear()
    smtp[0].raw.clear()
    smtp[0].envelopes.clear()
    smtp[0].refuse, smtp[0].hang, smtp[0].waiting = None, 0.0, False
    yield smtp[0]
    smtp[0].refuse, smtp[0].hang = None, 0.0


def send(client: Client, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/v2/transactional-email/send", json={"from": SENDER, **body}, headers=tenant.headers
    )
    assert response.status_code == 202, response.text
    reply: dict[str, Any] = response.json()
    return reply


def settled(client: Client, tenant: Tenant, message_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        found: dict[str, Any] = read(client, tenant, f"/v2/transactional-email/{message_id}")
        if found["status"] in statuses:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def template(client: Client, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = client.post("/v2/templates", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# templates --------------------------------------------------------------------------------------


def test_templates_are_saved_read_and_replaced(client: Client, tenant: Tenant) -> None:
    first = template(
        client, tenant, subject="Order {{ order.id }}", html="<p>Hi {{ name }}</p>", text="Hi {{ name }}"
    )
    second = template(client, tenant, subject="Welcome", html="<p>Welcome</p>")
    assert (first["id"], second["id"]) == (1, 2)
    assert read(client, tenant, "/v2/templates/1")["subject"] == "Order {{ order.id }}"
    response = client.put(
        "/v2/templates/2", json={"subject": "Hello", "html": "<b>Hello</b>"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert [t["subject"] for t in read(client, tenant, "/v2/templates")] == ["Order {{ order.id }}", "Hello"]
    assert_problem(client.get("/v2/templates/9", headers=tenant.headers), 404, "template_id")


def test_a_template_that_does_not_compile_is_refused_with_its_line(client: Client, tenant: Tenant) -> None:
    response = client.post(
        "/v2/templates", json={"subject": "x", "html": "<p>\n{% if %}\n</p>"}, headers=tenant.headers
    )
    problem = assert_problem(response, 400, "root > html")
    assert "line 2" in problem["detail"]
    assert read(client, tenant, "/v2/templates") == []


# sending ----------------------------------------------------------------------------------------


def test_a_template_is_rendered_escaped_and_delivered_with_its_attachment(
    client: Client, tenant: Tenant, inbox: Inbox
) -> None:
    template(
        client,
        tenant,
        subject="Your order {{ order.id }}",
        html="<p>Hello {{ name }}, total {{ order.total }}</p>",
        text="Hello {{ name }}, total {{ order.total }}",
    )
    pdf = base64.b64encode(PDF).decode()
    reply = send(
        client,
        tenant,
        template_id=1,
        data={"name": "<Ann>", "order": {"id": "A-1", "total": "£9"}},
        to={"email": "ann@example.org", "name": "Ann Smith"},
        reply_to={"email": "help@example.com"},
        stream="Orders",
        attachments=[{"filename": "invoice.pdf", "content": pdf}],
    )
    assert (reply["status"], reply["sandbox"]) == ("OK", False)
    done = settled(client, tenant, reply["message_id"], "sent", "failed")
    assert (done["status"], done["attempts"], done["error"]) == ("sent", 1, None)
    [message] = inbox.received
    assert message["Subject"] == "Your order A-1"
    assert message["To"] == "Ann Smith <ann@example.org>"
    assert message["From"] == "Example Shop <shop@example.com>"
    assert message["Reply-To"] == "help@example.com"
    assert message["Message-ID"] == f"<{reply['message_id']}@patron>"
    assert message.get_content_type() == "multipart/mixed"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "multipart/alternative",
        "application/pdf",
    ]
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and "Hello &lt;Ann&gt;, total £9" in html.get_content()
    assert text is not None and "Hello <Ann>, total £9" in text.get_content()
    [attachment] = list(message.iter_attachments())
    assert (attachment.get_content_type(), attachment.get_filename()) == ("application/pdf", "invoice.pdf")
    assert attachment.get_content() == PDF


def test_sandbox_renders_and_keeps_without_delivering(client: Client, tenant: Tenant, inbox: Inbox) -> None:
    reply = send(
        client, tenant, html="<p>Try</p>", subject="Sandbox", to={"email": "ann@example.org"}, sandbox=True
    )
    found = read(client, tenant, f"/v2/transactional-email/{reply['message_id']}")
    assert (found["status"], found["html"], found["subject"]) == ("sandbox", "<p>Try</p>", "Sandbox")
    time.sleep(0.5)  # the sender polls twice a second: it would have picked a queued message up
    assert inbox.received == []


def test_a_profile_id_sends_to_the_profiles_email(client: Client, tenant: Tenant, inbox: Inbox) -> None:
    push(
        client,
        tenant,
        [{"@type": "contact", "id": "c1", "email": "bob@example.org", "marketing_optin": False}],
    )
    [profile] = read(client, tenant, "/v2/profiles")
    reply = send(client, tenant, html="<p>Receipt</p>", subject="Receipt", profile_id=profile["id"])
    assert settled(client, tenant, reply["message_id"], "sent", "failed")["status"] == "sent"
    assert inbox.received[-1]["To"] == "bob@example.org"  # transactional mail ignores the opt-out


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"subject": "x", "html": "x"}, "root > to"),
        ({"to": {"email": "a@example.org"}, "subject": "x"}, "root > template_id"),
        ({"to": {"email": "a@example.org"}, "template_id": 1, "html": "x"}, "root > template_id"),
        ({"to": {"email": "a@example.org"}, "html": "x"}, "root > subject"),
        ({"to": {"email": "not an email"}, "html": "x", "subject": "x"}, "root > to > email"),
        (
            {
                "to": {"email": "a@example.org"},
                "html": "x",
                "subject": "x",
                "attachments": [
                    {"filename": "a.pdf", "content": base64.b64encode(PDF).decode()},
                    {"filename": "b.pdf", "content": base64.b64encode(b"not a pdf").decode()},
                ],
            },
            "root > attachments > 1 > content",
        ),
        (
            {
                "to": {"email": "a@example.org"},
                "html": "x",
                "subject": "x",
                "attachments": [{"filename": "a.pdf", "content": "!!not base64!!"}],
            },
            "root > attachments > 0 > content",
        ),
    ],
)
def test_a_bad_send_is_refused_and_nothing_is_kept(
    client: Client, tenant: Tenant, inbox: Inbox, body: dict[str, Any], field: str
) -> None:
    response = client.post(
        "/v2/transactional-email/send", json={"from": SENDER, **body}, headers=tenant.headers
    )
    problem = assert_problem(response, 400)
    assert problem["errors"][0]["field"] == field, problem
    time.sleep(0.3)
    assert inbox.received == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": {"email": "a@example.org"}, "template_id": 99}, "root > template_id"),
        ({"profile_id": "0000-000000-000000", "html": "x", "subject": "x"}, "root > profile_id"),
    ],
)
def test_naming_what_the_account_does_not_have_is_a_404(
    client: Client, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    response = client.post(
        "/v2/transactional-email/send", json={"from": SENDER, **body}, headers=tenant.headers
    )
    assert_problem(response, 404, field)


def test_a_variable_the_data_does_not_give_renders_empty(
    client: Client, tenant: Tenant, inbox: Inbox
) -> None:
    template(client, tenant, subject="Order {{ order.id }}", html="<p>[{{ order.id }}]</p>")
    reply = send(client, tenant, template_id=1, data={}, to={"email": "a@example.org"}, sandbox=True)
    found = read(client, tenant, f"/v2/transactional-email/{reply['message_id']}")
    assert (found["subject"], found["html"]) == ("Order ", "<p>[]</p>")


# delivery failures ------------------------------------------------------------------------------


def test_a_permanent_refusal_fails_at_once_with_the_servers_answer(
    client: Client, tenant: Tenant, inbox: Inbox
) -> None:
    inbox.refuse = "550 5.1.1 mailbox unavailable"
    reply = send(client, tenant, html="<p>x</p>", subject="x", to={"email": "gone@example.org"})
    done = settled(client, tenant, reply["message_id"], "sent", "failed")
    assert (done["status"], done["attempts"], done["error"]) == ("failed", 1, "550 5.1.1 mailbox unavailable")


def test_a_temporary_refusal_is_retried_then_sent(client: Client, tenant: Tenant, inbox: Inbox) -> None:
    inbox.refuse = "451 4.3.0 try again later"
    reply = send(client, tenant, html="<p>x</p>", subject="later", to={"email": "ann@example.org"})
    deadline = time.monotonic() + 30
    while read(client, tenant, f"/v2/transactional-email/{reply['message_id']}")["attempts"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    inbox.refuse = None
    done = settled(client, tenant, reply["message_id"], "sent", "failed")
    assert done["status"] == "sent" and done["attempts"] >= 2
    assert [m["Subject"] for m in inbox.received] == ["later"]


def test_smtp_down_gives_retries_then_failed_with_the_reason(tmp_path: Path, new_database_url: Any) -> None:
    down = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there
    with running_app(tmp_path, new_database_url(), smtp_url=down, smtp_backoff=0.01) as app:
        tenant = app.tenant()
        reply = send(app.client, tenant, html="<p>x</p>", subject="x", to={"email": "a@example.org"})
        done = settled(app.client, tenant, reply["message_id"], "sent", "failed")
    assert (done["status"], done["attempts"]) == ("failed", 5)
    assert "ConnectionRefusedError" in done["error"]


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    known = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == USER
    return AuthResult(success=known, handled=False)  # a refusal is answered with 535


USER = (b"shop", b"s3cret")


@pytest.mark.parametrize(
    ("tls", "credentials", "trusted", "outcome"),
    [
        ("starttls", "shop:s3cret", True, "sent"),
        ("implicit", "shop:s3cret", True, "sent"),
        ("starttls", "shop:wrong", True, "535"),
        ("implicit", "shop:s3cret", False, "SSLCertVerificationError"),
    ],
)
# aiosmtpd does not count implicit TLS as TLS for AUTH, and warns when told so
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_delivery_over_tls_with_authentication(
    tmp_path: Path, new_database_url: Any, tls: str, credentials: str, trusted: bool, outcome: str
) -> None:
    """A relay that takes mail only over TLS (STARTTLS on a plain port, or implicit TLS) from an
    authenticated user, with a certificate from a private CA given as ``cafile``."""
    certificates = local_certificates(tmp_path / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.cert, certificates.key)
    inbox, port = Inbox(), free_port()
    server_tls: dict[str, Any] = (
        {"tls_context": context, "require_starttls": True}
        if tls == "starttls"
        else {"ssl_context": context, "auth_require_tls": False}  # aiosmtpd: implicit TLS is not "TLS"
    )
    relay = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        server_hostname="localhost",
        auth_required=True,
        authenticator=_authenticate,
        **server_tls,
    )
    relay.start()
    scheme, query = ("smtp", "?starttls=true") if tls == "starttls" else ("smtps", "?")
    cafile = f"&cafile={certificates.ca}" if trusted else ""
    url = f"{scheme}://{credentials}@localhost:{port}{query}{cafile}"
    try:
        with running_app(tmp_path, new_database_url(), smtp_url=url, smtp_backoff=0.01) as app:
            tenant = app.tenant()
            reply = send(app.client, tenant, html="<p>x</p>", subject="secure", to={"email": "a@example.org"})
            done = settled(app.client, tenant, reply["message_id"], "sent", "failed")
    finally:
        relay.stop()
    if outcome == "sent":
        assert done["status"] == "sent", done
        assert [m["Subject"] for m in inbox.received] == ["secure"]
        assert inbox.sessions == [(True, True)]  # over TLS, authenticated
    else:
        assert done["status"] == "failed" and outcome in done["error"], done
        assert inbox.received == []


def test_without_smtp_messages_stay_queued_and_readable_and_survive_a_restart(
    tmp_path: Path, new_database_url: Any, smtp: tuple[Inbox, int], inbox: Inbox
) -> None:
    database_url = new_database_url()
    with running_app(tmp_path, database_url) as app:
        tenant = app.tenant()
        reply = send(app.client, tenant, html="<p>Kept</p>", subject="Kept", to={"email": "a@example.org"})
        time.sleep(0.5)
        found = read(app.client, tenant, f"/v2/transactional-email/{reply['message_id']}")
        assert (found["status"], found["html"]) == ("queued", "<p>Kept</p>")
    url = f"smtp://127.0.0.1:{smtp[1]}"
    with running_app(tmp_path, database_url, smtp_url=url) as app:
        done = settled(app.client, tenant, reply["message_id"], "sent", "failed")
    assert done["status"] == "sent"
    assert [m["Subject"] for m in inbox.received] == ["Kept"]


def test_an_unknown_message_is_a_404(client: Client, tenant: Tenant) -> None:
    assert_problem(client.get("/v2/transactional-email/nope", headers=tenant.headers), 404, "message_id")


# one-click unsubscribe (RFC 8058) ----------------------------------------------------------------


def test_every_email_carries_a_one_click_unsubscribe_that_works(
    client: Client, tenant: Tenant, inbox: Inbox
) -> None:
    push(
        client,
        tenant,
        [{"@type": "contact", "id": "c1", "email": "ann@example.org", "marketing_optin": True}],
    )
    reply = send(client, tenant, html="<p>x</p>", subject="News", to={"email": "ann@example.org"})
    settled(client, tenant, reply["message_id"], "sent", "failed")
    [message] = inbox.received
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(message["List-Unsubscribe"]).strip("<>")
    path = link[link.index("/u/") :]
    assert path.startswith(f"/u/{reply['message_id']}.")

    page = client.get(path)
    assert page.status_code == 200 and '<form method="post"' in page.text
    clicked = client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert clicked.status_code == 200 and "You are unsubscribed" in clicked.text
    deadline = time.monotonic() + 30
    while not (found := read(client, tenant, "/v2/unsubscribes")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [unsubscribe] = found
    assert (unsubscribe["email_address"], unsubscribe["type"]) == ("ann@example.org", "list_unsubscribe")
    assert read(client, tenant, "/v2/profiles")[0]["marketing_optin"] is False


@pytest.mark.parametrize(
    "tamper",
    [lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"), lambda t: t.split(".")[0], lambda t: "x" + t],
)
def test_a_tampered_unsubscribe_link_is_refused_with_a_plain_page(
    client: Client, tenant: Tenant, tamper: Callable[[str], str]
) -> None:
    reply = send(client, tenant, html="<p>x</p>", subject="x", to={"email": "ann@example.org"}, sandbox=True)
    token = read(client, tenant, f"/v2/transactional-email/{reply['message_id']}")["unsubscribe_url"].rsplit(
        "/", 1
    )[1]
    for method in (client.get, client.post):
        refused = method(f"/u/{tamper(token)}")
        assert refused.status_code == 400
        assert refused.headers["content-type"].startswith("text/html") and "not valid" in refused.text
    assert read(client, tenant, "/v2/unsubscribes") == []


def test_a_message_whose_sender_dies_during_the_exchange_is_never_sent_again(
    tmp_path: Path, patron_environment: dict[str, str], smtp: tuple[Inbox, int], inbox: Inbox
) -> None:
    """The process dies while the SMTP server holds the message: the server may have taken it, so
    after the lease the message is failed, not sent a second time."""
    data_dir = tmp_path / "data"
    environment = {
        **patron_environment,
        "PATRON_SMTP_URL": f"smtp://127.0.0.1:{smtp[1]}",
        "PATRON_SMTP_LEASE": "1",
    }
    tenant = create_tenant_cli(data_dir, environment=environment)
    inbox.hang = 5.0
    server = start_server(data_dir, environment=environment)
    try:
        with server.client() as http:
            reply = http.post(
                "/v2/transactional-email/send",
                json={
                    "from": SENDER,
                    "to": {"email": "ann@example.org"},
                    "html": "<p>x</p>",
                    "subject": "once",
                },
                headers=tenant.headers,
            )
            assert reply.status_code == 202, reply.text
            message_id = reply.json()["message_id"]
            deadline = time.monotonic() + 30
            while not inbox.waiting:  # the exchange has begun and hangs
                assert time.monotonic() < deadline
                time.sleep(0.02)
        tree = [
            psutil.Process(server.process.pid),
            *psutil.Process(server.process.pid).children(recursive=True),
        ]
        for process in tree:
            process.kill()
        psutil.wait_procs(tree, timeout=30)
    finally:
        server.stop()
    inbox.hang = 0.0
    server = start_server(data_dir, environment=environment)
    try:
        with server.client() as http:
            deadline = time.monotonic() + 30
            while (found := http.get(f"/v2/transactional-email/{message_id}", headers=tenant.headers).json())[
                "status"
            ] != "failed":
                assert time.monotonic() < deadline, found
                time.sleep(0.1)
            time.sleep(1)  # a resend would have had time to arrive
    finally:
        server.stop()
    assert found["attempts"] == 1 and "interrupted" in found["error"]
    assert [m["Subject"] for m in inbox.received].count("once") <= 1  # the killed exchange's, at most


# addresses and headers --------------------------------------------------------------------------

INJECTED = "Victim, attacker@evil.example,"
#: Control characters (C0, DEL, C1) and Unicode line separators: none may be in a name or a subject.
BREAKING = ["\x00", "\x01", "\t", "\n", "\x0b", "\x0c", "\r", "\x1b", "\x1f", "\x7f", "\x80", "\x85"]
BREAKING += ["\x9f", "\u2028", "\u2029"]


def stored_messages(shared: App) -> int:
    return int(
        shared.store.read_blocking(
            lambda conn: conn.execute(select(func.count()).select_from(messages)).scalar()
        )
    )


def test_a_name_never_adds_a_recipient(client: Client, tenant: Tenant, inbox: Inbox) -> None:
    """A name that reads as more addresses is quoted in its header; the envelope names the request's
    address alone."""
    reply = send(
        client,
        tenant,
        html="<p>x</p>",
        subject="Hello",
        to={"email": "victim@example.org", "name": INJECTED},
        reply_to={"email": "help@example.com", "name": "Help, desk@evil.example,"},
        **{"from": {"email": "shop@example.com", "name": "Shop, owner@evil.example,"}},
    )
    done = settled(client, tenant, reply["message_id"], "sent", "failed")
    assert done["status"] == "sent", done
    assert inbox.envelopes == [("shop@example.com", ["victim@example.org"])]
    [message], [raw] = inbox.received, inbox.raw
    assert b'\r\nTo: "Victim, attacker@evil.example," <victim@example.org>\r\n' in raw
    assert b'\r\nFrom: "Shop, owner@evil.example," <shop@example.com>\r\n' in raw
    assert b'\r\nReply-To: "Help, desk@evil.example," <help@example.com>\r\n' in raw
    for header, (name, address) in {
        "To": (INJECTED, "victim@example.org"),
        "From": ("Shop, owner@evil.example,", "shop@example.com"),
        "Reply-To": ("Help, desk@evil.example,", "help@example.com"),
    }.items():
        assert [(a.display_name, a.addr_spec) for a in message[header].addresses] == [(name, address)]


def test_a_long_name_stays_one_address_when_its_header_is_folded(
    client: Client, tenant: Tenant, inbox: Inbox
) -> None:
    name = ("Smith, John " * 21).strip()  # 251 characters: beyond a 78-character line
    reply = send(
        client, tenant, html="<p>x</p>", subject="Long", to={"email": "john@example.org", "name": name}
    )
    assert settled(client, tenant, reply["message_id"], "sent", "failed")["status"] == "sent"
    assert inbox.envelopes == [("shop@example.com", ["john@example.org"])]
    [message] = inbox.received
    assert [(a.display_name, a.addr_spec) for a in message["To"].addresses] == [(name, "john@example.org")]


def test_names_and_addresses_beyond_ascii(client: Client, tenant: Tenant, inbox: Inbox) -> None:
    """A name beyond ASCII is encoded (RFC 2047); an address beyond ASCII travels with SMTPUTF8."""
    encoded = send(
        client,
        tenant,
        html="<p>x</p>",
        subject="Grüße",
        to={"email": "ann@example.org", "name": "Ännä, Smïth"},
    )
    international = send(
        client,
        tenant,
        html="<p>x</p>",
        subject="Grüße",
        to={"email": "ännä@exämple.org", "name": "Ännä"},
        reply_to={"email": "hilfe@bäckerei.example", "name": "Hilfe, Bäckerei"},
        **{"from": {"email": "bäckerei@bäckerei.example", "name": "Bäckerei"}},
    )
    for reply in (encoded, international):
        assert settled(client, tenant, reply["message_id"], "sent", "failed")["status"] == "sent"
    assert inbox.envelopes == [
        ("shop@example.com", ["ann@example.org"]),
        ("bäckerei@bäckerei.example", ["ännä@exämple.org"]),
    ]
    assert b"=?utf-8?" in inbox.raw[0].split(b"\r\n\r\n")[0]
    assert [(a.display_name, a.addr_spec) for raw in inbox.raw for a in headers(raw)["To"].addresses] == [
        ("Ännä, Smïth", "ann@example.org"),
        ("Ännä", "ännä@exämple.org"),
    ]
    international_headers = headers(inbox.raw[1])
    assert [(a.display_name, a.addr_spec) for a in international_headers["From"].addresses] == [
        ("Bäckerei", "bäckerei@bäckerei.example")
    ]
    assert [(a.display_name, a.addr_spec) for a in international_headers["Reply-To"].addresses] == [
        ("Hilfe, Bäckerei", "hilfe@bäckerei.example")
    ]


@pytest.mark.parametrize("character", BREAKING, ids=[f"U+{ord(c):04X}" for c in BREAKING])
@pytest.mark.parametrize("field", ["from > name", "to > name", "reply_to > name", "subject"])
def test_a_control_character_or_line_separator_in_a_name_or_subject_is_refused(
    shared: App, client: Client, tenant: Tenant, field: str, character: str
) -> None:
    body: dict[str, Any] = {
        "from": dict(SENDER),
        "to": {"email": "a@example.org", "name": "Ann"},
        "reply_to": {"email": "help@example.com", "name": "Help"},
        "subject": "Hello",
        "html": "<p>x</p>",
    }
    value = f"Ann{character}Bcc: evil@example.net"
    if field == "subject":
        body["subject"] = value
    else:
        body[field.split(" > ")[0]]["name"] = value
    before = stored_messages(shared)
    response = client.post("/v2/transactional-email/send", json=body, headers=tenant.headers)
    problem = assert_problem(response, 400, f"root > {field}")
    assert "control characters or line separators" in problem["detail"]
    assert stored_messages(shared) == before


@pytest.mark.parametrize(
    ("to", "field"),
    [
        ({"email": "a@example.org", "name": "Friends: a@example.org, evil@example.net;"}, "root > to > name"),
        ({"email": "a@example.org", "name": "=?utf-8?q?evil=40example.net?="}, "root > to > name"),
        ({"email": "a@example.org", "name": "x" * 257}, "root > to > name"),
        ({"email": "a(comment)@example.org"}, "root > to > email"),
        ({"email": "victim@example.org>,<evil"}, "root > to > email"),
        ({"email": "ann..smith@example.org"}, "root > to > email"),
    ],
)
def test_an_address_that_cannot_be_sent_as_given_is_refused(
    shared: App, client: Client, tenant: Tenant, to: dict[str, str], field: str
) -> None:
    """Group syntax, a name the header would read differently (an encoded word), or an address the
    header or the SMTP envelope would read as another."""
    before = stored_messages(shared)
    body = {"from": SENDER, "to": to, "subject": "x", "html": "x"}
    response = client.post("/v2/transactional-email/send", json=body, headers=tenant.headers)
    assert_problem(response, 400, field)
    assert stored_messages(shared) == before


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("subject", "Hello\nBcc: evil@example.net", "the subject"),
        ("subject", "Hello\x0bthere", "the subject"),
        ("recipient_name", "Friends: evil@example.net;", "the recipient"),
        ("recipient", "victim@example.org>,<evil@example.net", "the recipient"),
        ("sender", "shop@example.com, evil@example.net", "the From header"),
        ("reply_to", "Help <help@example.com>, evil@example.net", "the Reply-To header"),
    ],
)
def test_a_message_that_cannot_be_built_fails_with_the_reason(
    shared: App, client: Client, tenant: Tenant, inbox: Inbox, column: str, value: str, reason: str
) -> None:
    """A row written otherwise than through the API (an older version, a hand) is never sent with a
    second address, and never left ``sending``."""
    message_id = str(uuid.uuid4())
    row: dict[str, Any] = {
        "message_id": message_id,
        "status": "queued",
        "sender": "Example Shop <shop@example.com>",
        "reply_to": None,
        "recipient": "victim@example.org",
        "recipient_name": None,
        "subject": "Hello",
        "html": "<p>x</p>",
        "attachments": "[]",
        "created_at": datetime.now(UTC),
        column: value,
    }

    def insert_row(conn: Connection) -> None:
        account_id = conn.execute(select(accounts.c.id).where(accounts.c.hash == tenant.hash)).scalar_one()
        conn.execute(insert(messages).values(account_id=account_id, **row))

    shared.store.write_blocking(insert_row)
    done = settled(client, tenant, message_id, "sent", "failed")
    assert (done["status"], done["attempts"]) == ("failed", 1), done
    assert done["error"].startswith("the message could not be built: ") and reason in done["error"], done
    assert "evil" not in done["error"]
    time.sleep(0.3)
    assert inbox.envelopes == [] and inbox.received == []
