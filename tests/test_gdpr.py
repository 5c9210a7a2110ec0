"""GDPR anonymisation and the access export, through HTTP (reference section 5.9).

The completeness test seeds one person in every store (contacts in two collections, orders, custom
events, a list, consent changes, an operator's unsubscribe, a rejected record, a failed merge that
names them, and a push still queued when the request arrives), anonymises them, then searches every
text column of every table of the schema (the list comes from the schema, not from this file), and
on SQLite the raw database files, for anything that identified them: nothing is found. Another
person's data reads back the same, field by field.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import LargeBinary, String, Text, select

from conftest import Tenant, push, run_cli, wait_applied
from patron import gdpr
from patron.ingest.queue import unpack
from patron.store.schema import import_batches, metadata
from patron.tracking import wire
from test_push import App, Client, app_fixtures, assert_problem, read

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
                "id": f"{who.tag}-order-1",
                "grand_total": 40,
                "currency": "GBP",
                "customer": customer,
                "shipping_address": address,
                "ip_address": "10.1.2.3",
            },
            {
                "@type": "order",
                "id": f"{who.tag}-order-2",
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
                "id": f"{who.tag}-event-{i}",
                "event_type": "viewed",
                "identity_email": who.email,
                "properties": {"name": first},
            }
            for i in range(3)
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
    for kind, d, url in (
        ("pageview", {"type": "homepage"}, f"https://shop.example/?om_user={who.email}"),
        ("identify", {"uiid": who.email, "profile": {"firstname": first}}, None),
        ("setbasket", {"id": "b", "total": "40", "lis": [{"pid": "p-1", "q": "1", "tot": "40"}]}, None),
        ("transaction", {"tid": f"{who.tag}-order-1"}, None),
    ):
        event = wire.encode({**browser, "type": kind, "channel": "system", "url": url, "d": d})
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


def test_anonymisation_leaves_nothing_behind(shared: App, client: Client, make_tenant: Any) -> None:
    tenant = make_tenant("gdpr shop")
    for who in (ANN, BOB):
        seed(shared, tenant, who)
    assert {t for _, _, t in found_in_tables(shared, ANN.traces)} == set(ANN.traces)  # seeded everywhere
    before = everything(client, tenant)
    queued = push(
        client,
        tenant,
        [{"@type": "contact", "id": "late", "email": ANN.email, "firstname": ANN.names[0]}],
        wait=False,
    )  # arrives before the request: anonymised too
    reply = request_deletion(client, tenant, email=ANN.email, comment="ticket 42")
    done = completed(client, tenant, reply["id"])
    assert wait_applied(client, tenant, queued["request_id"])["status"] == "applied"

    assert done["summary"] == "3 contact records anonymised, 2 orders anonymised, 3 events anonymised"
    assert found_in_tables(shared, ANN.traces) == []
    if shared.environment == {}:  # SQLite: the files themselves, after a checkpoint
        database = shared.data_dir / "patron.db"
        shared.store.purge()
        for path in [database, *database.parent.glob("patron.db-*")]:
            data = path.read_bytes().lower()
            assert [t for t in ANN.traces if t.lower().encode() in data] == [], path

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
    assert sorted(o["id"] for o in export["orders"]) == ["annabel-order-1", "annabel-order-2"]
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
