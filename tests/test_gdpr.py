"""GDPR anonymisation and the access export, through HTTP (reference section 5.9).

The completeness test seeds one person in every store (contacts in two collections, orders, custom
events, a list, consent changes, an operator's unsubscribe, a rejected record, a failed merge that
names them, and a push still queued when the request arrives), with their identifiers in free text
(a coupon code, a line item's properties), in ids (a custom event's, an order's) and in a delivery
error (the SMTP server's refusal quoting their address and name), on a real ``patron serve`` that
delivers mail. It anonymises them, then searches every text column of every table of the schema
(the list comes from the schema, not from this file), on SQLite the raw database files and the WAL,
and the server's log, for anything that identified them: nothing is found. Another person's data
reads back the same, field by field, and what referred to a renamed id still does.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import LargeBinary, String, Text, select

from conftest import Server, Tenant, eventually, free_port, push, run_cli, start_server, wait_applied
from patron import gdpr
from patron.config import Settings
from patron.ingest.queue import unpack
from patron.store import open_store
from patron.store.schema import import_batches, metadata
from patron.tracking import wire
from support.app import App, Client, app_fixtures
from support.http import assert_problem, read

shared, client, make_tenant = app_fixtures()
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00$")


@dataclass(frozen=True)
class Someone:
    """A person, every value of whom would identify them."""

    tag: str

    @property
    def email(self) -> str:
        return f"{self.tag}.person@example.org"

    @property
    def customer_id(self) -> str:
        return f"{self.tag}-customer-4711"

    @property
    def phone(self) -> str:
        return "+447700900123" if self.tag == "annabel" else "+447700900999"

    @property
    def names(self) -> tuple[str, str]:
        return f"{self.tag.title()}first", f"{self.tag.title()}last"

    @property
    def contact_ids(self) -> tuple[str, str]:
        return f"{self.tag}-listing-1", f"{self.tag}-listing-2"

    @property
    def order_ids(self) -> tuple[str, str]:
        """The second holds their customer id."""
        return f"{self.tag}-order-1", f"{self.customer_id}-order-2"

    @property
    def event_ids(self) -> list[str]:
        """The first holds their email."""
        return [f"signup-{self.email}", f"{self.tag}-event-1", f"{self.tag}-event-2"]

    @property
    def traces(self) -> list[str]:
        return [
            self.email,
            self.customer_id,
            self.phone,
            *self.names,
            *self.contact_ids,
            f"{self.tag}-street",
        ]


ANN, BOB = Someone("annabel"), Someone("bartholomew")


def seed(app: App, tenant: Tenant, who: Someone) -> None:
    """``who`` in every store, through the API (and the CLI for an operator's unsubscribe)."""
    client = app.client
    first, last = who.names
    contact = {"email": who.email, "firstname": first, "lastname": last, "phone_number": who.phone}
    push(
        client,
        tenant,
        [
            {
                "@type": "contact",
                "id": who.contact_ids[0],
                "customer_id": who.customer_id,
                **contact,
                "marketing_optin": "EXPLICITLY_OPTEDIN",
                "@add_to_lists": ["vip"],
                "properties": {"nickname": first},
            },
            {
                "@type": "contact",
                "@collection": "newsletter",
                "id": who.contact_ids[1],
                "email": who.email,
                "firstname": first,
            },
        ],
    )
    push(
        client,
        tenant,
        [{"@type": "contact", "id": who.contact_ids[0], "marketing_optin": "EXPLICITLY_OPTEDOUT"}],
    )
    address = {"firstname": first, "lastname": last, "city": f"{who.tag}-street", "postcode": "N1 9GU"}
    customer = {"id": who.customer_id, "email": who.email, "firstname": first, "lastname": last}
    push(
        client,
        tenant,
        [
            {
                "@type": "order",
                "id": who.order_ids[0],
                "grand_total": 40,
                "currency": "GBP",
                "customer": customer,
                "shipping_address": address,
                "ip_address": "10.1.2.3",
                "coupon_code": f"THANKS-{first.upper()}",
                "lineitems": [
                    {"product_id": "p-1", "quantity": 1, "properties": {"engraving": f"For {first} {last}"}}
                ],
            },
            {
                "@type": "order",
                "id": who.order_ids[1],
                "grand_total": 60,
                "currency": "GBP",
                "customer": {"email": who.email},
                "billing_address": address,
            },
            {"@type": "order", "id": f"{who.tag}-rejected", "currency": "not money", "customer": customer},
        ],
    )
    push(
        client,
        tenant,
        [
            {
                "@type": "custom_event",
                "id": event_id,
                "event_type": "viewed",
                "identity_email": who.email,
                "properties": {"name": first},
            }
            for event_id in who.event_ids
        ],
    )
    mail = client.post(
        "/v2/transactional-email/send",
        json={
            "from": {"email": "shop@example.com"},
            "to": {"email": who.email, "name": first},
            "subject": f"Hello {first}",
            "html": f'<p>Dear {first} {last}</p><a href="https://example.com/?email={who.email}">Shop</a>',
            "sandbox": True,
        },
        headers=tenant.headers,
    )
    assert mail.status_code == 202, mail.text
    html = read(client, tenant, f"/v2/transactional-email/{mail.json()['message_id']}")["html"]
    [link] = re.findall(r'href="([^"]+)"', html)
    assert client.get(link[link.index("/c/") :], follow_redirects=False).status_code == 302  # a click
    browser = {"cid": f"{who.tag}-browser", "sid": f"{who.tag}-session", "src": "news.example||email||||1"}
    # a browser that never said who it was confirms the order whose id holds their customer id
    other = {"cid": f"{who.tag}-other-browser", "sid": f"{who.tag}-other-session", "src": None}
    for seen, kind, d, url in (
        (browser, "pageview", {"type": "homepage"}, f"https://shop.example/?om_user={who.email}"),
        (browser, "identify", {"uiid": who.email, "profile": {"firstname": first}}, None),
        (
            browser,
            "setbasket",
            {"id": "b", "total": "40", "lis": [{"pid": "p-1", "q": "1", "tot": "40"}]},
            None,
        ),
        (browser, "transaction", {"tid": who.order_ids[0]}, None),
        (other, "pageview", {"type": "checkout"}, f"https://shop.example/thanks?email={who.email}"),
        (other, "transaction", {"tid": who.order_ids[1]}, None),
    ):
        event = wire.encode({**seen, "type": kind, "channel": "system", "url": url, "d": d})
        assert client.get(f"/track/v3/{tenant.hash}/event.gif", params={"data": event}).status_code == 200
    failed = client.post(
        "/v2/merge-profile",
        json={
            "survivor": {"type": "email_address", "value": f"nobody-{who.email}"},
            "customers_to_merge": [{"type": "email_address", "value": who.email}],
        },
        headers=tenant.headers,
    )
    wait_applied(client, tenant, failed.json()["id"])
    run_cli(
        app.data_dir,
        "unsubscribe",
        "--account",
        tenant.hash,
        "--email",
        who.email,
        "--reason",
        f"{first} called",
        environment=app.environment,
    )
    deadline = time.monotonic() + 30
    while who.email not in str(read(client, tenant, "/v2/unsubscribes?limit=250")):
        assert time.monotonic() < deadline, "the operator's unsubscribe was not applied"
        time.sleep(0.05)


def request_deletion(client: Client, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = client.post("/v2/data-deletion-requests", json=body, headers=tenant.headers)
    assert response.status_code == 202, response.text
    found: dict[str, Any] = response.json()
    return found


def completed(client: Client, tenant: Tenant, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        found: dict[str, Any] = read(client, tenant, f"/v2/data-deletion-requests/{request_id}")
        if found["status"] == "completed":
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


#: What the API lists of people's own records (the rest, lists, are shared).
PERSONAL = [
    "/v2/contacts/default?limit=250",
    "/v2/contacts/newsletter?limit=250",
    "/v2/orders?limit=250",
    "/v2/custom-events?limit=250",
    "/v2/profiles?limit=250",
    "/v2/unsubscribes?limit=250",
    "/v2/push/_errors",
]


def everything(client: Client, tenant: Tenant) -> dict[str, Any]:
    """What an account reads through the API."""
    paths = [
        "/v2/contacts/default?limit=250",
        "/v2/contacts/newsletter?limit=250",
        "/v2/orders?limit=250",
        "/v2/custom-events?limit=250",
        "/v2/profiles?limit=250",
        "/v2/lists?mode=all",
        "/v2/lists/vip/changes?limit=250",
        "/v2/unsubscribes?limit=250",
        "/v2/push/_errors",
    ]
    return {path: read(client, tenant, path) for path in paths}


def found_in_tables(app: App, traces: list[str]) -> list[tuple[str, str, str]]:
    """(table, column, trace) for each trace in any text column of any table of the schema."""
    hits = []
    for table in metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, String | Text | LargeBinary)]
        if not columns:
            continue
        rows = app.store.read_blocking(lambda conn, t=table, cs=columns: conn.execute(select(*cs)).all())  # type: ignore[misc]
        for row in rows:
            for column, value in zip(columns, row, strict=True):
                if column is import_batches.c.records:  # the queue's copies are deflated JSON
                    value = json.dumps(unpack(value))
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")
                hits += [(table.name, column.name, t) for t in traces if t.lower() in text.lower()]
    return hits


def test_every_table_of_the_schema_has_an_anonymiser() -> None:
    assert sorted(metadata.tables) == sorted(gdpr.HANDLERS)


class Relay:
    """An SMTP server (an aiosmtpd handler) that refuses the addresses of ``refused`` with the answer
    given, as a relay does that quotes the address and the name it knows; the rest it takes."""

    def __init__(self, refused: dict[str, str]) -> None:
        self.refused = refused
        self.delivered: list[list[str]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refused:
            return self.refused[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.delivered.append(list(envelope.rcpt_tos))
        return "250 OK"


REFUSAL = f"550 <{ANN.email}> ({' '.join(ANN.names)}) mailbox unavailable"


@pytest.fixture
def served(tmp_path: Path, patron_environment: dict[str, str]) -> Iterator[tuple[App, Server, Relay]]:
    """A real ``patron serve`` (with its worker and the outbox's sender, logging to a file) whose SMTP
    server refuses Ann's address; the app seen from the test: an HTTPS client and the same store."""
    relay, port = Relay({ANN.email: REFUSAL}), free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    data_dir = tmp_path / "data"
    smtp = {"PATRON_SMTP_URL": f"smtp://127.0.0.1:{port}", "PATRON_SMTP_BACKOFF": "0.05"}
    server = start_server(data_dir, environment={**patron_environment, **smtp})
    database_url = patron_environment.get("PATRON_DATABASE_URL")
    store = open_store(replace(Settings(), data_dir=data_dir, database_url=database_url, redis_url=None))
    store.start()
    try:
        with server.client() as http:
            yield App(http, store, data_dir, patron_environment), server, relay  # type: ignore[arg-type]
    finally:
        store.close()
        server.stop()
        controller.stop()


def deliver(client: Client, tenant: Tenant, who: Someone, outcome: str) -> dict[str, Any]:
    """A message to ``who``, by name, once the sender is done with it (``outcome``)."""
    first, last = who.names
    mail = client.post(
        "/v2/transactional-email/send",
        json={
            "from": {"email": "shop@example.com", "name": "Shop"},
            "to": {"email": who.email, "name": f"{first} {last}"},
            "subject": f"Your order, {first}",
            "html": f"<p>Dear {first} {last}</p>",
        },
        headers=tenant.headers,
    )
    assert mail.status_code == 202, mail.text
    path = f"/v2/transactional-email/{mail.json()['message_id']}"
    found: dict[str, Any] = eventually(
        lambda: (m := read(client, tenant, path))["status"] in ("sent", "failed") and m, "delivery"
    )
    assert found["status"] == outcome, found
    return found


def files_holding(data_dir: Path, traces: list[str]) -> list[tuple[str, str]]:
    """(file, trace) for each trace in the SQLite database, its WAL or its other files."""
    database = data_dir / "patron.db"
    hits = []
    for path in [database, *database.parent.glob("patron.db-*")]:
        data = path.read_bytes().lower()
        hits += [(path.name, t) for t in traces if t.lower().encode() in data]
    return hits


def test_anonymisation_leaves_nothing_behind(served: tuple[App, Server, Relay]) -> None:
    app, server, relay = served
    client = app.client
    tenant = app.tenant("gdpr shop")
    for who in (ANN, BOB):
        seed(app, tenant, who)
    refused = deliver(client, tenant, ANN, "failed")
    assert refused["error"] == REFUSAL  # the server's answer, quoting the address and the name
    deliver(client, tenant, BOB, "sent")
    assert relay.delivered == [[BOB.email]]
    assert {t for _, _, t in found_in_tables(app, ANN.traces)} == set(ANN.traces)  # seeded everywhere
    before = everything(client, tenant)
    queued = push(
        client,
        tenant,
        [{"@type": "contact", "id": "late", "email": ANN.email, "firstname": ANN.names[0]}],
        wait=False,
    )  # arrives before the request: anonymised too
    reply = request_deletion(client, tenant, email=ANN.email, comment=f"ticket 42, from {ANN.email}")
    done = completed(client, tenant, reply["id"])
    assert wait_applied(client, tenant, queued["request_id"])["status"] == "applied"

    assert done["summary"] == "3 contact records anonymised, 2 orders anonymised, 3 events anonymised"
    assert done["comment"] == "ticket 42, from (anonymised)"
    assert found_in_tables(app, ANN.traces) == []
    if "PATRON_DATABASE_URL" not in app.environment:  # SQLite: the files, once the worker has purged
        eventually(lambda: files_holding(app.data_dir, ANN.traces) == [], "the database files purged")
    log = server.log_path.read_text()
    assert f'"message_id":"{refused["id"]}"' in log and '"reason":"550"' in log  # the sender logged
    assert [t for t in ANN.traces + BOB.traces if t.lower() in log.lower()] == []
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    [anonymised] = [e for e in lines if e.get("message") == "anonymised"]
    assert (anonymised["request_id"], anonymised["account"]) == (reply["id"], tenant.hash)

    # what is left of them: the delivery error's codes, revenue under renamed ids that still resolve
    message = read(client, tenant, f"/v2/transactional-email/{refused['id']}")
    assert (message["status"], message["error"], message["to"]) == (
        "failed",
        "550 (anonymised)",
        gdpr.hashed_email(ANN.email),
    )
    orders = [
        o
        for o in read(client, tenant, "/v2/orders?limit=250")
        if o.get("customer", {}).get("email") == gdpr.hashed_email(ANN.email)
    ]
    assert sorted(o["grand_total"] for o in orders) == [40, 60]
    first, renamed = sorted(orders, key=lambda o: o["grand_total"])
    assert first["id"] == ANN.order_ids[0]  # holds no identifier: kept
    assert first["coupon_code"] == "THANKS-(anonymised)"
    assert first["lineitems"][0]["properties"] == {"engraving": "For (anonymised)"}  # the full name, once
    assert re.fullmatch(r"anonymised-[0-9a-f]{32}", renamed["id"])
    attribution = read(client, tenant, f"/v2/orders/{renamed['id']}")["@attribution"]
    assert attribution["session_id"] == f"{ANN.tag}-other-session"  # the other browser's, still found
    events = [e["id"] for e in read(client, tenant, "/v2/custom-events?limit=250") if ANN.tag in e["id"]]
    assert sorted(events) == [f"{ANN.tag}-event-1", f"{ANN.tag}-event-2"]

    after = everything(client, tenant)
    for path in PERSONAL:  # Bob's data reads as it did, field by field
        bobs = [item for item in before[path] if BOB.email in str(item) or BOB.tag in str(item)]
        assert bobs, path
        for item in bobs:
            assert item in after[path], (path, item)
    [bobs_profile] = read(client, tenant, f"/v2/profiles?email={BOB.email}")
    assert bobs_profile["lists"] == [{"id": "vip", "title": None, "type": "STATIC"}]


def test_the_request_and_its_status(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [{"@type": "contact", "id": "c1", "email": "Gone@Example.org"}])
    reply = request_deletion(client, tenant, email="Gone@Example.org", comment="asked by letter")
    md5 = hashlib.md5(b"gone@example.org").hexdigest()  # noqa: S324
    assert reply == {
        "id": reply["id"],
        "action": "anonymise",
        "comment": "asked by letter",
        "identities": [{"hashed_email": f"{md5}@anonymous.ometria"}],
        "source": {"api_request_id": reply["id"], "origin": "api", "user": None},
        "status": "queued",
        "summary": None,
        "timestamp_created": reply["timestamp_created"],
        "timestamp_completed": None,
    }
    assert STAMP.match(reply["timestamp_created"])
    done = completed(client, tenant, reply["id"])
    assert (done["summary"], STAMP.match(done["timestamp_completed"]) is not None) == (
        "1 contact record anonymised, 0 orders anonymised, 0 events anonymised",
        True,
    )
    assert read(client, tenant, "/v2/data-deletion-requests") == [done]
    [contact] = read(client, tenant, "/v2/contacts/default")
    assert contact["email"] == f"{md5}@anonymous.ometria"


def test_identities_other_than_an_email(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [{"@type": "contact", "id": "c1", "customer_id": "C-9", "email": "c9@example.org"}])
    reply = request_deletion(client, tenant, identities=[{"type": "customer_id", "value": "C-9"}])
    assert reply["identities"][0]["type"] == "customer_id"
    assert "C-9" not in str(reply)
    completed(client, tenant, reply["id"])
    assert read(client, tenant, "/v2/profiles?email=c9@example.org") == []


def test_data_after_the_request_starts_a_new_profile(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [{"@type": "contact", "id": "c1", "email": "again@example.org", "firstname": "Ann"}])
    push(
        client,
        tenant,
        [{"@type": "order", "id": "o1", "grand_total": 25, "customer": {"email": "again@example.org"}}],
    )
    [old] = read(client, tenant, "/v2/profiles")
    completed(client, tenant, request_deletion(client, tenant, email="again@example.org")["id"])
    push(client, tenant, [{"@type": "contact", "id": "c1", "email": "again@example.org", "firstname": "Ann"}])
    push(
        client,
        tenant,
        [
            {
                "@type": "custom_event",
                "id": "e1",
                "event_type": "x",
                "profile_id": old["id"],
                "identity_email": "again@example.org",
            }
        ],
    )
    [new] = read(client, tenant, "/v2/profiles?email=again@example.org")
    assert new["id"] != old["id"]
    assert (new["firstname"], new["stats"]["orders"]) == ("Ann", 0)
    anonymised = read(client, tenant, f"/v2/profiles/{old['id']}")
    assert (anonymised["identities"], anonymised["firstname"], anonymised["stats"]["revenue"]) == (
        [],
        None,
        25,
    )
    assert [e["id"] for e in read(client, tenant, f"/v2/custom-events?profile_id={new['id']}")] == ["e1"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "root > email"),
        ({"comment": "no one"}, "root > email"),
        ({"email": "not an email"}, "root > email"),
        ({"identities": []}, "root > identities"),
        ({"identities": [{"type": "twitter", "value": "x"}]}, "root > identities > 0 > type"),
        ({"identities": [{"type": "email", "value": "nope"}]}, "root > identities > 0 > value"),
        ({"email": "a@example.org", "extra": 1}, "root"),
    ],
)
def test_bad_requests_are_refused_and_queue_nothing(
    client: Client, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    response = client.post("/v2/data-deletion-requests", json=body, headers=tenant.headers)
    problem = assert_problem(response, 400)
    assert problem["errors"][0]["field"] == field, problem
    assert read(client, tenant, "/v2/data-deletion-requests") == []


def test_six_requests_a_minute(client: Client, make_tenant: Any) -> None:
    tenant = make_tenant("limited", limits={"data": "unlimited", "push": "unlimited"})
    codes = [
        client.post(
            "/v2/data-deletion-requests", json={"email": f"p{i}@example.org"}, headers=tenant.headers
        ).status_code
        for i in range(7)
    ]
    assert codes == [202] * 6 + [429]
    assert len(read(client, tenant, "/v2/data-deletion-requests")) == 6


def test_an_unknown_request_is_a_404(client: Client, tenant: Tenant) -> None:
    assert_problem(client.get("/v2/data-deletion-requests/nope", headers=tenant.headers), 404, "request_id")


# the access export --------------------------------------------------------------------------------


def test_the_export_holds_every_record_about_the_person(shared: App, client: Client, tenant: Tenant) -> None:
    seed(shared, tenant, ANN)
    [profile] = read(client, tenant, f"/v2/profiles?email={ANN.email}")
    export = read(client, tenant, f"/v2/profiles/{profile['id']}/export")
    assert export["profile"] == profile
    assert sorted(c["id"] for c in export["contacts"]) == sorted(ANN.contact_ids)
    assert sorted(o["id"] for o in export["orders"]) == sorted(ANN.order_ids)
    assert len(export["custom_events"]) == 3
    assert [m["id"] for m in export["lists"]] == ["vip"]
    assert [(c["channel"], c["status"], c["source"]) for c in export["consent"]] == [
        ("email", "subscribed", "api"),
        ("email", "unsubscribed", "api"),
        ("email", "unsubscribed", "app"),
    ]
    assert_problem(
        client.get("/v2/profiles/0000-000000-000000/export", headers=tenant.headers), 404, "profile_id"
    )


def test_the_export_of_an_anonymised_person_holds_nothing_of_them(
    shared: App, client: Client, tenant: Tenant
) -> None:
    seed(shared, tenant, ANN)
    [profile] = read(client, tenant, f"/v2/profiles?email={ANN.email}")
    completed(client, tenant, request_deletion(client, tenant, email=ANN.email)["id"])
    export = str(read(client, tenant, f"/v2/profiles/{profile['id']}/export")).lower()
    assert [t for t in ANN.traces if t.lower() in export] == []


def test_a_namesakes_records_are_kept(client: Client, tenant: Tenant) -> None:
    """Names alone identify no one: another person with the same name keeps their rejected record."""
    first, last = ANN.names
    push(
        client,
        tenant,
        [{"@type": "contact", "id": "ann", "email": ANN.email, "firstname": first, "lastname": last}],
    )
    namesake = {
        "@type": "order",
        "id": "namesake-order",
        "currency": "bad",
        "customer": {"firstname": first, "lastname": last, "email": "other@example.org"},
    }
    push(client, tenant, [namesake])
    completed(client, tenant, request_deletion(client, tenant, email=ANN.email)["id"])
    [kept] = read(client, tenant, "/v2/push/_errors")
    assert kept["record"] == namesake


def test_two_requests_for_one_person_both_complete(client: Client, tenant: Tenant) -> None:
    push(client, tenant, [{"@type": "contact", "id": "c1", "email": "twice@example.org"}])
    first = request_deletion(client, tenant, email="twice@example.org")
    second = request_deletion(client, tenant, email="twice@example.org")
    assert completed(client, tenant, first["id"])["summary"].startswith("1 contact record anonymised")
    assert completed(client, tenant, second["id"])["summary"].startswith("0 contact records anonymised")


def test_records_queued_just_before_the_request_are_anonymised_too(client: Client, tenant: Tenant) -> None:
    """Pushes and the request sent back to back (the worker may take them in one look at the queue)."""
    for attempt in range(5):
        email = f"rushed{attempt}@example.org"
        sent = [
            push(client, tenant, [{"@type": "contact", "id": f"r{attempt}-{i}", "email": email}], wait=False)
            for i in range(3)
        ]
        reply = request_deletion(client, tenant, email=email)
        assert completed(client, tenant, reply["id"])["summary"].startswith("3 contact records anonymised")
        for each in sent:
            wait_applied(client, tenant, each["request_id"])
    assert "rushed" not in str(read(client, tenant, "/v2/contacts/default?limit=250"))


def test_an_id_that_names_the_person_is_renamed_again_after_it_is_reused(
    client: Client, tenant: Tenant
) -> None:
    """The same id (holding the email) anonymised twice, as a new order after the first request:
    each becomes a keyed hash, the second another one, so both orders keep their revenue."""
    email = "reused@example.org"
    order = {"@type": "order", "id": f"web-{email}", "grand_total": 10, "customer": {"email": email}}
    ids = []
    for _ in range(2):
        push(client, tenant, [order])
        completed(client, tenant, request_deletion(client, tenant, email=email)["id"])
        ids.append([o["id"] for o in read(client, tenant, "/v2/orders?limit=250")])
    [first], [*both] = ids
    assert re.fullmatch(r"anonymised-[0-9a-f]{32}", first)
    assert len(set(both)) == 2 and first in both
    assert email not in str(read(client, tenant, "/v2/orders?limit=250"))
