"""Outbound webhooks through HTTP, the CLI and a real HTTPS receiver (docs/webhooks.md): endpoints and
their checks, events written with the changes they tell of and delivered signed (Standard Webhooks),
retries in order per profile, redirects refused, private addresses refused at creation and at
delivery, endpoints disabled after failures and replayed, and GDPR anonymisation of a person with
undelivered events.

The module shares one app (server and worker) whose worker delivers to 127.0.0.0/8 and trusts the
receiver's CA; each test has fresh accounts and its own endpoints."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, update
from standardwebhooks import Webhook

from conftest import Tenant, create_tenant_cli, eventually, push, run_cli, start_server
from patron import accounts, gdpr
from patron.config import Webhooks
from patron.errors import FieldInvalid
from patron.ingest import push as ingest
from patron.ingest.queue import enqueue_operation
from patron.ingest.submit import Submitter
from patron.ingest.worker import apply_round
from patron.profiles.operations import MERGE
from patron.profiles.requests import Identifier, MergeRequest
from patron.runtime import queue_kinds
from patron.store import Store
from patron.store.schema import profiles, webhook_events, webhook_outbox
from patron.webhooks import delivery, endpoints, outbox
from support.app import App, Client, running_app
from support.http import assert_problem, post, read
from support.receiver import Receiver, receiver

#: The worker's settings in this module: loopback allowed, quick retries, short leases.
ENVIRONMENT = {
    "PATRON_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8,::1/128",  # (localhost may resolve to both)
    "PATRON_WEBHOOK_BACKOFF": "0.2",
    "PATRON_WEBHOOK_LEASE": "3",
}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    with receiver(tmp_path_factory.mktemp("receiver")) as found:
        yield found


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, new_database_url: Callable[[], str | None], hooks: Receiver
) -> Iterator[App]:
    settings = {**ENVIRONMENT, "PATRON_WEBHOOK_CA": str(hooks.ca)}
    with environment(settings), running_app(tmp_path_factory.mktemp("app"), new_database_url()) as app:
        yield app


@pytest.fixture(scope="module")
def client(shared: App) -> Client:
    return shared.client


@pytest.fixture(scope="module")
def make_tenant(shared: App) -> Callable[..., Tenant]:
    return shared.tenant


@pytest.fixture
def path(request: pytest.FixtureRequest) -> str:
    """A path of the receiver of the test's own."""
    return f"/{request.node.name.replace('[', '-').rstrip(']')}"


def create(client: Client, tenant: Tenant, url: str, *types: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "event_types": list(types) or ["profile.created", "order.applied"], **fields}
    response = post(client, tenant, body, "/v2/webhooks")
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def contact(contact_id: str, email: str, **fields: Any) -> dict[str, Any]:
    return {"@type": "contact", "@collection": "default", "id": contact_id, "email": email, **fields}


def order(order_id: str, email: str, total: float = 10.0) -> dict[str, Any]:
    return {
        "@type": "order",
        "id": order_id,
        "timestamp": "2024-01-02T10:00:00+00:00",
        "currency": "GBP",
        "grand_total": total,
        "customer": {"email": email},
    }


ORDERS = ["order.applied"]


#: The deliverer's settings where a test takes its turns itself (:func:`turn`).
SETTINGS = Webhooks(allow_networks=(), ca_files=(), backoff=1.0, lease=60.0, disable_after=100)
LEASE = timedelta(seconds=SETTINGS.lease)


def turn(
    store: Store, finished: Sequence[tuple[delivery.Claimed, delivery.Outcome]], at: datetime, free: int
) -> tuple[list[delivery.Recorded], list[delivery.Claimed]]:
    """One write of the deliverer, as its loop takes it: the outbox fanned out, ``finished`` recorded
    and up to ``free`` events claimed."""
    return store.write_blocking(lambda conn: delivery.turn(conn, finished, at, LEASE, free, SETTINGS))


def payloads(hooks: Receiver, path: str, secret: str) -> list[dict[str, Any]]:
    """The payloads delivered to ``path``, each signature verified, in the order they came."""
    return [r.verified(secret) for r in hooks.delivered(path)]


# endpoints --------------------------------------------------------------------------------------


def test_an_endpoint_is_made_read_changed_and_deleted(
    client: Client, tenant: Tenant, hooks: Receiver
) -> None:
    made = create(client, tenant, hooks.url("/crud"), "order.applied", description="the shop's ERP")
    assert made["secret"].startswith("whsec_")
    Webhook(made["secret"])  # a secret Standard Webhooks takes
    assert made["id"].startswith("ep_") and made["enabled"] is True
    assert made["url"] == hooks.url("/crud") and made["event_types"] == ["order.applied"]

    shown = read(client, tenant, f"/v2/webhooks/{made['id']}")
    assert "secret" not in shown and shown["description"] == "the shop's ERP"
    assert [e["id"] for e in read(client, tenant, "/v2/webhooks")] == [made["id"]]
    assert "secret" not in read(client, tenant, "/v2/webhooks")[0]

    changes = {"event_types": ["profile.merged", "email.sent"], "enabled": False, "max_concurrency": 2}
    response = client.put(f"/v2/webhooks/{made['id']}", json=changes, headers=tenant.headers)
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["event_types"] == ["profile.merged", "email.sent"] and changed["max_concurrency"] == 2
    assert changed["enabled"] is False and changed["disabled_reason"] == "disabled by an operator"
    assert "secret" not in changed

    response = client.delete(f"/v2/webhooks/{made['id']}", headers=tenant.headers)
    assert response.status_code == 204
    assert read(client, tenant, "/v2/webhooks") == []
    assert_problem(client.get(f"/v2/webhooks/{made['id']}", headers=tenant.headers), 404, "webhook_id")


def test_another_accounts_endpoint_is_not_found(
    client: Client, make_tenant: Callable[..., Tenant], hooks: Receiver
) -> None:
    mine, theirs = make_tenant(), make_tenant()
    made = create(client, mine, hooks.url("/theirs"))
    for response in (
        client.get(f"/v2/webhooks/{made['id']}", headers=theirs.headers),
        client.delete(f"/v2/webhooks/{made['id']}", headers=theirs.headers),
        post(
            client,
            theirs,
            {"since": "2024-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z"},
            f"/v2/webhooks/{made['id']}/replay",
        ),
    ):
        assert_problem(response, 404, "webhook_id")
    assert read(client, theirs, "/v2/webhooks") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://localhost/hook", "event_types": ["order.applied"]}, "root > url"),
        ({"url": "not a url", "event_types": ["order.applied"]}, "root > url"),
        ({"url": "https://user:pw@localhost/hook", "event_types": ["order.applied"]}, "root > url"),
        ({"url": "https://10.1.2.3/hook", "event_types": ["order.applied"]}, "root > url"),  # private
        (
            {"url": "https://169.254.169.254/latest", "event_types": ["order.applied"]},
            "root > url",
        ),  # link-local
        (
            {"url": "https://[fd00::1]/hook", "event_types": ["order.applied"]},
            "root > url",
        ),  # unique local (IPv6), not allowed
        ({"url": "https://localhost/hook", "event_types": ["order.shipped"]}, "root > event_types > 0"),
        ({"url": "https://localhost/hook", "event_types": []}, "root > event_types"),
        ({"url": "https://localhost/hook"}, "root"),  # missing: the detail names it
        (
            {"url": "https://localhost/hook", "event_types": ["order.applied"], "max_concurrency": 0},
            "root > max_concurrency",
        ),
        (
            {"url": "https://localhost/hook", "event_types": ["order.applied"], "secret": "x"},
            "root",
        ),  # unknown
        ({"url": "https://x/" + "a" * 2000, "event_types": ["order.applied"]}, "root > url"),
    ],
)
def test_a_bad_endpoint_is_refused_naming_the_field(
    client: Client, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    assert_problem(post(client, tenant, body, "/v2/webhooks"), 400, field)
    assert read(client, tenant, "/v2/webhooks") == []


def test_an_account_has_at_most_ten_endpoints(client: Client, tenant: Tenant, hooks: Receiver) -> None:
    for n in range(10):
        create(client, tenant, hooks.url(f"/many/{n}"))
    response = post(
        client, tenant, {"url": hooks.url("/many/10"), "event_types": ["order.applied"]}, "/v2/webhooks"
    )
    assert_problem(response, 409)
    assert len(read(client, tenant, "/v2/webhooks")) == 10


def test_a_host_resolving_to_loopback_is_refused_without_the_operators_allowance() -> None:
    """``localhost`` resolves to 127.0.0.1: refused unless 127.0.0.0/8 is allowed."""
    with pytest.raises(FieldInvalid, match="non-global"):
        endpoints.checked_url("https://localhost:8443/hook", ())
    import ipaddress

    allowed = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert endpoints.checked_url("https://localhost:8443/hook", allowed) == "https://localhost:8443/hook"


# events, delivered --------------------------------------------------------------------------------


def test_a_push_delivers_profile_created_and_order_applied_signed(
    client: Client, tenant: Tenant, hooks: Receiver, path: str
) -> None:
    made = create(client, tenant, hooks.url(path), "profile.created", "order.applied")
    push(client, tenant, [contact("c1", "ann@example.com")])
    push(client, tenant, [order("o1", "ann@example.com", 25.5)])
    got = eventually(
        lambda: len(hooks.delivered(path)) >= 2 and payloads(hooks, path, made["secret"]), "events"
    )
    by_type = {p["type"]: p for p in got}
    assert set(by_type) == {"profile.created", "order.applied"} and len(got) == 2
    profile_id = by_type["profile.created"]["data"]["profile_id"]
    assert read(client, tenant, f"/v2/profiles/{profile_id}")["id"] == profile_id
    applied = by_type["order.applied"]["data"]
    assert applied["order_id"] == "o1" and applied["profile_id"] == profile_id
    assert applied["grand_total"] == 25.5 and applied["currency"] == "GBP" and applied["created"] is True
    request = hooks.delivered(path)[0]
    assert request.headers["webhook-id"].startswith("msg_")
    assert request.headers["content-type"] == "application/json"
    # a wrong secret does not verify
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 32).verify(request.body, request.headers)
    deliveries = f"/v2/webhooks/{made['id']}/deliveries"
    log = eventually(lambda: len(found := read(client, tenant, deliveries)) == 2 and found, "the log")
    assert {entry["status_code"] for entry in log} == {200}
    assert {entry["event_status"] for entry in log} == {"delivered"}
    assert {entry["event_id"] for entry in log} == {r.headers["webhook-id"] for r in hooks.delivered(path)}


def test_a_new_profiles_created_event_comes_before_the_events_of_its_records(
    client: Client, tenant: Tenant, hooks: Receiver, path: str
) -> None:
    """A record that makes a profile (an order, a custom event naming someone new): the profile's
    ``profile.created`` is delivered first, then the record's event, then the later records' events."""
    made = create(client, tenant, hooks.url(path), "profile.created", "order.applied", "custom_event.created")

    def event(event_id: str, email: str) -> dict[str, Any]:
        return {
            "@type": "custom_event",
            "id": event_id,
            "event_type": "wishlist",
            "identity_email": email,
            "timestamp": "2024-01-02T10:00:00+00:00",
        }

    push(client, tenant, [order("o1", "amy@example.com")], wait=False)  # in the round that makes amy
    push(client, tenant, [event("e1", "amy@example.com"), event("e2", "ben@example.com")])
    got = eventually(
        lambda: len(hooks.delivered(path)) >= 5 and payloads(hooks, path, made["secret"]), "the events"
    )
    amy = read(client, tenant, "/v2/profiles?email=amy@example.com")[0]["id"]
    ben = read(client, tenant, "/v2/profiles?email=ben@example.com")[0]["id"]
    about = {who: [p["type"] for p in got if p["data"].get("profile_id") == who] for who in (amy, ben)}
    assert about == {
        amy: ["profile.created", "order.applied", "custom_event.created"],
        ben: ["profile.created", "custom_event.created"],
    }, got
    assert len(got) == 5


def test_no_endpoint_no_event_and_unsubscribed_types_are_not_sent(
    client: Client, tenant: Tenant, hooks: Receiver, path: str
) -> None:
    made = create(client, tenant, hooks.url(path), "contact.unsubscribed")
    push(client, tenant, [contact("c1", "bob@example.com", marketing_optin="EXPLICITLY_OPTEDIN")])
    push(client, tenant, [contact("c1", "bob@example.com", marketing_optin="EXPLICITLY_OPTEDOUT")])
    got = eventually(lambda: payloads(hooks, path, made["secret"]), "the unsubscribe")
    assert [p["type"] for p in got] == ["contact.unsubscribed"]
    assert got[0]["data"]["channel"] == "email" and got[0]["data"]["source"] == "api"


def test_a_receiver_down_for_a_while_gets_everything_in_order_per_profile(
    client: Client, tenant: Tenant, hooks: Receiver, path: str
) -> None:
    down = path
    hooks.status[down] = 503
    made = create(client, tenant, hooks.url(down), "order.applied", max_concurrency=4)
    try:
        for n in range(4):
            for who in ("ann", "bob", "cat"):
                push(client, tenant, [order(f"{who}-{n}", f"{who}@example.com")], wait=False)
        eventually(lambda: len(hooks.requests(down)) >= 6, "failed attempts while down")
    finally:
        hooks.status.pop(down)
    got = eventually(
        lambda: len(hooks.delivered(down)) >= 12 and payloads(hooks, down, made["secret"]), "the backlog", 60
    )
    orders = [p["data"]["order_id"] for p in got]
    assert sorted(set(orders)) == sorted(f"{w}-{n}" for n in range(4) for w in ("ann", "bob", "cat"))
    for who in ("ann", "bob", "cat"):
        theirs = [o for o in orders if o.startswith(who)]
        assert theirs == [f"{who}-{n}" for n in range(4)], orders  # in order, each once
    failed = [r for r in hooks.requests(down) if r.answered == 503]
    assert failed, "no attempt failed"
    # a retried event keeps its webhook-id
    ids = {r.headers["webhook-id"] for r in hooks.delivered(down)}
    assert {r.headers["webhook-id"] for r in failed} <= ids
    log = read(client, tenant, f"/v2/webhooks/{made['id']}/deliveries?limit=250")
    assert {e["status_code"] for e in log} == {200, 503}
    assert all(len(e["response"]) <= 4096 for e in log if e["status_code"] == 503)
    assert read(client, tenant, f"/v2/webhooks/{made['id']}")["enabled"] is True


def test_an_endpoint_gets_no_more_requests_at_once_than_its_concurrency(
    client: Client, tenant: Tenant, hooks: Receiver, path: str
) -> None:
    hooks.delay[path] = 0.3
    made = create(client, tenant, hooks.url(path), "order.applied", max_concurrency=2)
    try:
        push(client, tenant, [order(f"o{n}", f"c{n}@example.com") for n in range(8)])
        eventually(lambda: len(hooks.delivered(path)) == 8, "every event", 60)
    finally:
        hooks.delay.pop(path)
    assert hooks.most_at_once[path] == 2  # eight profiles' events could all go at once: two did
    assert len(payloads(hooks, path, made["secret"])) == 8


def test_redirects_are_not_followed(client: Client, tenant: Tenant, hooks: Receiver, path: str) -> None:
    made = create(client, tenant, hooks.url(path), "order.applied")
    hooks.redirects[path] = path + "-elsewhere"
    try:
        push(client, tenant, [order("o1", "dan@example.com")])
        eventually(lambda: hooks.requests(path), "the attempt")
        log = eventually(lambda: read(client, tenant, f"/v2/webhooks/{made['id']}/deliveries"), "its log")
    finally:
        hooks.redirects.pop(path)
    assert log[-1]["status_code"] == 302 and "redirects are not followed" in log[-1]["error"]
    assert hooks.requests(path + "-elsewhere") == []


def test_a_profiles_anonymisation_deletes_its_undelivered_events(
    client: Client, tenant: Tenant, hooks: Receiver, path: str
) -> None:
    made = create(client, tenant, hooks.url(path), "profile.created", "order.applied", "profile.anonymised")
    client.put(f"/v2/webhooks/{made['id']}", json={"enabled": False}, headers=tenant.headers)
    push(client, tenant, [order("o1", "eve@example.com", 99.0)])
    push(client, tenant, [order("o2", "fay@example.com", 5.0)])
    eve = read(client, tenant, "/v2/profiles?email=eve@example.com")[0]["id"]
    response = post(client, tenant, {"email": "eve@example.com"}, "/v2/data-deletion-requests")
    assert response.status_code == 202, response.text
    request = f"/v2/data-deletion-requests/{response.json()['id']}"
    eventually(lambda: read(client, tenant, request)["status"] == "completed", "the anonymisation")
    client.put(f"/v2/webhooks/{made['id']}", json={"enabled": True}, headers=tenant.headers)
    got = eventually(
        lambda: len(hooks.delivered(path)) >= 3 and payloads(hooks, path, made["secret"]), "the events"
    )
    assert len(got) == 3
    about_eve = [p for p in got if p["data"].get("profile_id") == eve]
    assert about_eve == [
        {"type": "profile.anonymised", "timestamp": about_eve[0]["timestamp"], "data": {"profile_id": eve}}
    ]
    assert "eve@example.com" not in json.dumps(got)
    others = sorted(p["type"] for p in got if p is not about_eve[0])
    assert others == ["order.applied", "profile.created"]  # fay's


def test_the_outbox_holds_each_event_once_and_a_claim_fans_it_out_to_each_endpoint(
    store: Store, hooks: Receiver
) -> None:
    """The change's transaction writes an event once, however many endpoints; the deliverer's claim
    writes it for each endpoint subscribed to its type, with the same webhook-id."""

    def seed(conn: Connection) -> tuple[str, str]:
        account, _ = accounts.create_account(conn, "shop", "staging")
        at = accounts.now()

        def endpoint(path: str, types: list[str]) -> str:
            body = endpoints.NewEndpoint(url=hooks.url(path), event_types=types)
            return endpoints.create(conn, account.id, body, body.url, at).id

        orders_only, everything = (
            endpoint("/orders", ["order.applied"]),
            endpoint("/all", list(outbox.EVENT_TYPES)),
        )
        outbox.emit(conn, account.id, "order.applied", {"order_id": "o1"}, at, profile="p1")
        outbox.emit(conn, account.id, "profile.updated", {"profile_id": "p1"}, at, profile="p1")
        return orders_only, everything

    orders_only, everything = store.write_blocking(seed)
    held = select(func.count()).select_from(webhook_outbox)
    assert store.read_blocking(lambda conn: conn.execute(held).scalar_one()) == 2
    assert store.read_blocking(outbox.pending) == 2
    claimed = turn(store, [], accounts.now(), 10)[1]
    assert store.read_blocking(lambda conn: conn.execute(held).scalar_one()) == 0
    # each endpoint's first event about p1 (its profile.updated waits for its order.applied)
    urls = {c.url: json.loads(c.payload)["type"] for c in claimed}
    assert urls == {hooks.url("/orders"): "order.applied", hooks.url("/all"): "order.applied"}
    assert len({c.event_id for c in claimed}) == 1  # one event: one webhook-id
    assert store.read_blocking(outbox.pending) == 3  # fanned out: 1 + 2 rows, none delivered yet
    assert orders_only != everything


def applied(store: Store, account: accounts.Account, body: bytes | None = None) -> None:
    """``body`` pushed (if any), and the worker's rounds applied until the queue is empty."""
    if body is not None:
        submit = Submitter(store, wake=lambda: None)
        asyncio.run(ingest.push(submit, account, body, accounts.now()))
    while apply_round(store, queue_kinds()):
        pass


def outbox_rows(store: Store) -> list[tuple[int, list[list[Any]]]]:
    """The outbox's rows: how many events each holds, and its events."""
    o = webhook_outbox
    rows = store.read_blocking(
        lambda conn: conn.execute(select(o.c.events, o.c.payload).order_by(o.c.id)).all()
    )
    return [(row.events, json.loads(row.payload)) for row in rows]


def profile_of(store: Store, account_id: int, email: str) -> str:
    p = profiles
    query = select(p.c.profile_id).where(p.c.account_id == account_id, p.c.email == email)
    return str(store.read_blocking(lambda conn: conn.execute(query).scalar_one()))


@pytest.mark.parametrize("swept", [False, True], ids=["fanned-out-before-the-sweeps", "swept"])
def test_an_anonymisation_deletes_the_persons_events_still_in_the_outbox(
    store: Store, hooks: Receiver, swept: bool
) -> None:
    """Events not yet fanned out to the endpoints go as the fanned-out ones do: the person's deleted
    (only their ``profile.anonymised`` left), anyone else's kept. The deliverer drops them once their
    profile is anonymised; the outbox's sweep takes them out of its rows."""
    account, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "shop", "staging"))
    types = ["profile.created", "order.applied", "profile.anonymised"]
    body = endpoints.NewEndpoint(url=hooks.url("/outbox-gdpr"), event_types=types)
    store.write_blocking(lambda conn: endpoints.create(conn, account.id, body, body.url, accounts.now()))
    records = [order("o1", "eve@example.com", 99.0), order("o2", "fay@example.com", 5.0)]
    applied(store, account, json.dumps(records).encode())
    assert store.read_blocking(outbox.pending) == 4  # in the outbox: no deliverer has claimed
    eve = profile_of(store, account.id, "eve@example.com")
    deletion = gdpr.DeletionRequest(email="eve@example.com")
    store.write_blocking(lambda conn: gdpr.request(conn, account.id, None, "req-1", deletion, accounts.now()))
    if swept:
        applied(store, account)
    else:
        assert apply_round(store, queue_kinds())  # the anonymisation's keyed part alone
    held = [event for _, events in outbox_rows(store) for event in events]
    theirs = [event[1] for event in held if event[2] == eve]
    if swept:  # only their profile.anonymised is left in the outbox
        assert theirs == ["profile.anonymised"] and "eve@example.com" not in json.dumps(held)
    else:
        assert theirs == ["profile.created", "order.applied", "profile.anonymised"]
    claimed = turn(store, [], accounts.now(), 10)[1]
    got = sorted(json.loads(c.payload)["type"] for c in claimed)
    assert got == ["profile.anonymised", "profile.created"]  # eve's last event, fay's first
    assert store.read_blocking(outbox.pending) == 3  # and fay's order.applied after her profile.created
    assert "eve@example.com" not in json.dumps([c.payload for c in claimed])


def test_a_rounds_events_are_one_row_and_a_merged_profiles_are_the_survivors_when_fanned_out(
    store: Store, hooks: Receiver
) -> None:
    """The events a round emits are one row of the outbox, whatever their number; a profile merged
    before its events are fanned out gives them to the survivor, delivered in order with its own
    (after them in the outbox, before the merge's own event)."""
    account, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "shop", "staging"))
    body = endpoints.NewEndpoint(url=hooks.url("/merged"), event_types=["order.applied", "profile.merged"])
    store.write_blocking(lambda conn: endpoints.create(conn, account.id, body, body.url, accounts.now()))
    records = [order("o1", "ann@example.com"), order("o2", "bob@example.com"), order("o3", "ann@example.com")]
    applied(store, account, json.dumps(records).encode())
    [(held, events)] = outbox_rows(store)
    assert held == 3 and [event[3]["order_id"] for event in events] == ["o1", "o2", "o3"]
    assert len({event[0] for event in events}) == 3  # each its own webhook-id
    ann, bob = (
        profile_of(store, account.id, "ann@example.com"),
        profile_of(store, account.id, "bob@example.com"),
    )
    assert [event[2] for event in events] == [ann, bob, ann]
    merge = MergeRequest(
        survivor=Identifier("profile_hash", ann), customers_to_merge=[Identifier("profile_hash", bob)]
    )
    store.write_blocking(
        lambda conn: enqueue_operation(conn, account.id, None, "job-1", MERGE, merge, accounts.now())
    )
    applied(store, account)
    assert store.read_blocking(outbox.pending) == 4
    claimed = turn(store, [], accounts.now(), 10)[1]
    assert [json.loads(c.payload)["data"].get("order_id") for c in claimed] == ["o1"]  # all ann's now
    sent = []
    while claimed:
        sent += [json.loads(c.payload) for c in claimed]
        claimed = turn(
            store, [(c, delivery.Outcome(200, 5, None, "ok")) for c in claimed], accounts.now(), 10
        )[1]
    assert [(p["type"], p["data"].get("order_id")) for p in sent] == [
        ("order.applied", "o1"),
        ("order.applied", "o2"),
        ("order.applied", "o3"),
        ("profile.merged", None),
    ]
    e = webhook_events
    told = store.read_blocking(lambda conn: conn.execute(select(e.c.profile).distinct()).scalars().all())
    assert told == [ann]


def test_a_merge_under_way_holds_the_fan_out_of_its_accounts_events(store: Store, hooks: Receiver) -> None:
    """A deliverer fanning out while a transaction merges profiles waits for it (PostgreSQL: the
    account's fan-out lock; SQLite: the one writer), then reads the merge: the merged profile's event
    in the outbox is the survivor's, behind its own."""
    import threading

    account, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "shop", "staging"))
    body = endpoints.NewEndpoint(url=hooks.url("/held"), event_types=["order.applied"])
    store.write_blocking(lambda conn: endpoints.create(conn, account.id, body, body.url, accounts.now()))
    applied(
        store, account, json.dumps([order("o1", "ann@example.com"), order("o2", "bob@example.com")]).encode()
    )
    ann, bob = (
        profile_of(store, account.id, "ann@example.com"),
        profile_of(store, account.id, "bob@example.com"),
    )
    held, go = threading.Event(), threading.Event()

    def merging(conn: Connection) -> None:
        outbox.hold(conn, account.id)
        p = profiles
        conn.execute(
            update(p).where(p.c.account_id == account.id, p.c.profile_id == bob).values(merged_into=ann)
        )
        held.set()
        go.wait(30)

    merge = threading.Thread(target=store.write_blocking, args=(merging,))
    merge.start()
    assert held.wait(30)
    claimed: list[delivery.Claimed] = []
    deliverer = threading.Thread(target=lambda: claimed.extend(turn(store, [], accounts.now(), 10)[1]))
    deliverer.start()
    deliverer.join(1.0)
    assert deliverer.is_alive()  # waiting for the merge
    go.set()
    merge.join(30)
    deliverer.join(30)
    assert [json.loads(c.payload)["data"]["order_id"] for c in claimed] == ["o1"]  # o2 waits behind it
    e = webhook_events
    told = store.read_blocking(lambda conn: conn.execute(select(e.c.profile).distinct()).scalars().all())
    assert told == [ann]


def test_outcomes_recorded_together_come_to_what_they_would_one_by_one(store: Store, hooks: Receiver) -> None:
    """The deliverer records the outcomes of the attempts that end together in one write
    (``delivery.record``): each attempt is logged and its event delivered or retried, and the
    endpoint's run of failures is what it would be recorded one by one, in order: a failure before
    a delivery is forgotten by it, a failure after it counts."""

    def seed(conn: Connection) -> tuple[int, str]:
        account, _ = accounts.create_account(conn, "shop", "staging")
        at = accounts.now()
        body = endpoints.NewEndpoint(url=hooks.url("/together"), event_types=["order.applied"])
        made = endpoints.create(conn, account.id, body, body.url, at)
        for n in range(4):
            outbox.emit(conn, account.id, "order.applied", {"order_id": f"o{n}"}, at, profile=f"p{n}")
        return account.id, made.id

    account_id, endpoint_id = store.write_blocking(seed)
    claimed = turn(store, [], accounts.now(), 4)[1]
    assert len(claimed) == 4
    ok, bad = delivery.Outcome(200, 5, None, "ok"), delivery.Outcome(503, 7, "HTTP 503", "busy")

    def record(*finished: tuple[delivery.Claimed, delivery.Outcome]) -> list[str]:
        return [r.outcome for r in turn(store, finished, accounts.now(), 0)[0]]

    def failures() -> int:
        return store.read_blocking(lambda conn: endpoints.one(conn, account_id, endpoint_id)).failures

    assert record((claimed[0], bad), (claimed[1], ok)) == ["retrying", "delivered"]
    assert failures() == 0
    assert record((claimed[2], ok), (claimed[3], bad)) == ["delivered", "retrying"]
    assert failures() == 1
    log = store.read_blocking(lambda conn: endpoints.attempts(conn, account_id, endpoint_id, 10, 0))
    assert sorted((a.status_code, a.event_status, a.latency_ms) for a in log) == [
        (200, "delivered", 5),
        (200, "delivered", 5),
        (503, "pending", 7),
        (503, "pending", 7),
    ]
    # the events retried are due again after their backoff, leased no more
    later = accounts.now() + timedelta(seconds=2)
    again = turn(store, [], later, 4)[1]
    assert sorted(c.id for c in again) == sorted([claimed[0].id, claimed[3].id])
    assert all(c.attempts == 2 for c in again)


def test_two_deliverers_share_the_work_each_event_once_in_order_per_profile(
    store: Store, hooks: Receiver, path: str
) -> None:
    """Two deliverers on one store (on PostgreSQL, concurrent transactions: each records its outcomes
    and claims in one write, holding endpoints' rows): every event arrives once, a profile's in order,
    and every outcome is recorded (none lost to a failed turn, which would leave its event leased)."""
    import ipaddress
    import threading

    def seed(conn: Connection) -> None:
        account, _ = accounts.create_account(conn, "shop", "staging")
        at = accounts.now()
        for n in range(2):
            url = hooks.url(f"{path}/{n}")
            body = endpoints.NewEndpoint(url=url, event_types=["order.applied"], max_concurrency=8)
            endpoints.create(conn, account.id, body, url, at)
        for n in range(120):
            data = {"order_id": f"o{n}", "n": n}
            outbox.emit(conn, account.id, "order.applied", data, at, profile=f"p{n % 12}")

    store.write_blocking(seed)
    settings = Webhooks(
        allow_networks=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
        ca_files=(hooks.ca,),
        backoff=0.2,
        lease=60.0,
        disable_after=100,
    )
    stop = threading.Event()
    deliverers = [delivery.Deliverer(store, settings, stop, poll=0.05, threads=8) for _ in range(2)]
    for deliverer in deliverers:
        deliverer.thread.start()
    try:
        delivered = select(func.count()).where(webhook_events.c.status == outbox.DELIVERED)
        eventually(lambda: store.read_blocking(lambda c: c.execute(delivered).scalar_one()) == 240, "all")
    finally:
        stop.set()
        for deliverer in deliverers:
            deliverer.thread.join(timeout=30)
    for n in range(2):
        got = [json.loads(r.body) for r in hooks.delivered(f"{path}/{n}")]
        assert len(got) == 120  # each once
        for profile in range(12):
            theirs = [p["data"]["n"] for p in got if p["data"]["n"] % 12 == profile]
            assert theirs == sorted(theirs) == list(range(profile, 120, 12))


# an app of the test's own ---------------------------------------------------------------------------


@contextmanager
def own_app(
    directory: Path, database_url: str | None, hooks: Receiver, **variables: str
) -> Iterator[tuple[App, Tenant]]:
    """An app whose worker has the module's settings, but for ``variables`` (a value "" unsets one)."""
    settings = {**ENVIRONMENT, "PATRON_WEBHOOK_CA": str(hooks.ca), **variables}
    with environment({k: v for k, v in settings.items() if v}), pytest.MonkeyPatch.context() as patch:
        for name in (k for k, v in settings.items() if not v):
            patch.delenv(name, raising=False)
        with running_app(directory, database_url) as app:
            yield app, app.tenant()


def test_a_host_resolving_to_loopback_at_delivery_time_is_refused(
    tmp_path: Path, new_database_url: Callable[[], str | None], hooks: Receiver, path: str
) -> None:
    """An endpoint whose host resolved to a global address when it was saved, and to 127.0.0.1 now
    (DNS rebinding): the worker checks again, and sends nothing."""
    with own_app(tmp_path, new_database_url(), hooks, PATRON_WEBHOOK_ALLOW_NETWORKS="") as (app, tenant):

        def save(conn: Any) -> endpoints.Endpoint:  # as it was, when the name resolved elsewhere
            account = accounts.get_account(conn, tenant.hash)
            body = endpoints.NewEndpoint(url=hooks.url(path), event_types=["order.applied"])
            return endpoints.create(conn, account.id, body, hooks.url(path), accounts.now())

        made = app.store.write_blocking(save)
        push(app.client, tenant, [order("o1", "gil@example.com")])
        deliveries = f"/v2/webhooks/{made.id}/deliveries"
        log = eventually(lambda: read(app.client, tenant, deliveries), "the refused attempt")
    assert log[0]["status_code"] is None and "non-global" in log[0]["error"], log
    assert log[0]["event_status"] == "pending"  # retried, for three days
    assert hooks.requests(path) == []


def test_an_endpoint_failing_is_disabled_keeps_its_events_and_replays_them(
    tmp_path: Path, new_database_url: Callable[[], str | None], hooks: Receiver, path: str
) -> None:
    hooks.status[path] = 500
    with own_app(tmp_path, new_database_url(), hooks, PATRON_WEBHOOK_DISABLE_AFTER="3") as (app, tenant):
        client = app.client
        made = create(client, tenant, hooks.url(path), "order.applied")
        one = f"/v2/webhooks/{made['id']}"
        push(client, tenant, [order("o1", "hal@example.com")])
        disabled = eventually(lambda: (e := read(client, tenant, one))["enabled"] is False and e, "disabled")
        assert "3 in a row" in disabled["disabled_reason"] and disabled["failures"] == 3
        assert len(hooks.requests(path)) == 3
        push(client, tenant, [order("o2", "hal@example.com")])  # kept, not sent
        hooks.status.pop(path)
        response = client.put(one, json={"enabled": True}, headers=tenant.headers)
        assert response.json()["enabled"] is True and response.json()["failures"] == 0
        first = eventually(lambda: len(got := hooks.delivered(path)) == 2 and got, "the kept events")
        assert [r.verified(made["secret"])["data"]["order_id"] for r in first] == ["o1", "o2"]
        deliveries = f"{one}/deliveries"
        eventually(lambda: len(read(client, tenant, deliveries)) == 5, "the attempts' outcomes")

        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        until = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        response = post(client, tenant, {"since": since, "until": until}, f"{one}/replay")
        assert response.status_code == 202 and response.json() == {"events": 2}
        again = eventually(lambda: len(got := hooks.delivered(path)) == 4 and got[2:], "the replay")
        assert [r.headers["webhook-id"] for r in again] == [r.headers["webhook-id"] for r in first]
        assert_problem(
            post(client, tenant, {"since": until, "until": since}, f"{one}/replay"), 400, "root > until"
        )


def test_the_cli_manages_endpoints(
    tmp_path: Path, new_database_url: Callable[[], str | None], hooks: Receiver, path: str
) -> None:
    with own_app(tmp_path, new_database_url(), hooks) as (app, tenant):
        env = {**app.environment, **ENVIRONMENT}
        account = ["--account", tenant.hash]

        def cli(*args: str, check: bool = True) -> Any:
            result = run_cli(app.data_dir, "webhooks", *args, *account, check=check, environment=env)
            return json.loads(result.stdout) if check and "--json" in args else result

        made = cli("create", "--url", hooks.url(path), "--event-type", "order.applied", "--json")
        assert made["secret"].startswith("whsec_") and made["event_types"] == ["order.applied"]
        listed = cli("list", "--json")
        assert [e["id"] for e in listed] == [made["id"]] and "secret" not in listed[0]
        assert cli("disable", "--id", made["id"], "--json")["enabled"] is False
        assert cli("enable", "--id", made["id"], "--json")["enabled"] is True
        push(app.client, tenant, [order("o1", "ivy@example.com")])
        eventually(lambda: hooks.delivered(path), "the event")
        replayed = cli("replay", "--id", made["id"], "--since", "2020-01-01T00:00:00", "--json")
        assert replayed["events"] == 1
        eventually(lambda: len(hooks.delivered(path)) == 2, "the replay")
        refused = cli("create", "--url", "http://example.com/", "--event-type", "order.applied", check=False)
        assert refused.returncode != 0 and "https" in refused.stderr
        no_env = {k: v for k, v in env.items() if k != "PATRON_WEBHOOK_ALLOW_NETWORKS"}
        refused = run_cli(
            app.data_dir,
            "webhooks",
            "create",
            "--url",
            hooks.url(path),
            "--event-type",
            "order.applied",
            *account,
            check=False,
            environment={**no_env, "PATRON_WEBHOOK_ALLOW_NETWORKS": ""},
        )
        assert refused.returncode != 0 and "non-global" in refused.stderr
        cli("delete", "--id", made["id"])
        assert cli("list", "--json") == []


# a real server, its worker killed -------------------------------------------------------------------


def test_sigkill_of_the_worker_mid_delivery_loses_nothing(
    tmp_path: Path, patron_environment: dict[str, str], hooks: Receiver, path: str
) -> None:
    """``patron serve``'s worker is killed (SIGKILL) while the receiver is slow to answer; the server
    starts another, which sends again what was under way once its lease ends: every event arrives,
    and a duplicate has the webhook-id of the first."""
    import signal

    import psutil

    env = {**patron_environment, **ENVIRONMENT, "PATRON_WEBHOOK_CA": str(hooks.ca)}
    data_dir = tmp_path / "data"
    tenant = create_tenant_cli(data_dir, environment=env)
    unlimited = ["--data", "unlimited", "--push", "unlimited"]
    run_cli(data_dir, "accounts", "set-limits", "--account", tenant.hash, *unlimited, environment=env)
    create = ["webhooks", "create", "--account", tenant.hash, "--url", hooks.url(path)]
    made = json.loads(
        run_cli(data_dir, *create, "--event-type", "order.applied", "--json", environment=env).stdout
    )
    hooks.delay[path] = 1.0
    server = start_server(data_dir, environment=env)
    try:
        with server.client() as client:
            expected = [f"o{n}" for n in range(8)]
            for order_id in expected:
                push(client, tenant, [order(order_id, f"{order_id}@example.com")], wait=False)
            eventually(lambda: hooks.arrived, "a delivery under way")
            [worker] = [p for p in psutil.Process(server.process.pid).children() if "worker" in p.cmdline()]
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=20)  # (reaped by the server, which starts another)
            hooks.delay.pop(path)

            def orders() -> list[str]:
                return sorted({r.verified(made["secret"])["data"]["order_id"] for r in hooks.delivered(path)})

            eventually(lambda: orders() == expected, "every event, after the restart", timeout=60)
            new_worker = [p for p in psutil.Process(server.process.pid).children() if "worker" in p.cmdline()]
            assert new_worker and new_worker[0].pid != worker.pid
    finally:
        server.stop()
    by_id: dict[str, set[str]] = {}
    for received in hooks.delivered(path):
        by_id.setdefault(received.headers["webhook-id"], set()).add(received.body.decode())
    assert len(by_id) == len(expected)  # duplicates, if any, share the webhook-id of the first
    assert all(len(bodies) == 1 for bodies in by_id.values())


def test_merges_consent_custom_events_and_updates_are_told(
    client: Client, tenant: Tenant, hooks: Receiver, path: str
) -> None:
    kinds = ["profile.updated", "profile.merged", "contact.unsubscribed", "contact.resubscribed"]
    made = create(client, tenant, hooks.url(path), *kinds, "custom_event.created")
    push(client, tenant, [contact("c1", "jo@example.com", marketing_optin="EXPLICITLY_OPTEDIN")])
    push(client, tenant, [contact("c2", "kim@example.com")])
    jo = read(client, tenant, "/v2/profiles?email=jo@example.com")[0]["id"]
    kim = read(client, tenant, "/v2/profiles?email=kim@example.com")[0]["id"]
    push(client, tenant, [contact("c1", "jo@example.com", marketing_optin="EXPLICITLY_OPTEDOUT")])
    push(client, tenant, [contact("c1", "jo@example.com", marketing_optin="EXPLICITLY_OPTEDIN")])
    event = {
        "@type": "custom_event",
        "id": "e1",
        "event_type": "wishlist",
        "identity_email": "jo@example.com",
        "timestamp": "2024-01-02T10:00:00+00:00",
    }
    push(client, tenant, [event])
    body = {
        "survivor": {"type": "profile_hash", "value": jo},
        "customers_to_merge": [{"type": "profile_hash", "value": kim}],
    }
    response = post(client, tenant, body, "/v2/merge-profile")
    assert response.status_code == 202, response.text

    def merged() -> list[dict[str, Any]]:
        found = payloads(hooks, path, made["secret"])
        return found if any(p["type"] == "profile.merged" for p in found) else []

    got = eventually(merged, "the merge")
    jos = [(p["type"], p["data"]) for p in got if p["data"].get("profile_id") == jo]
    types = [t for t, _ in jos]
    assert types.index("contact.unsubscribed") < types.index("contact.resubscribed")
    assert ("profile.merged", {"profile_id": jo, "merged_profile_id": kim}) in jos
    custom = next(d for t, d in jos if t == "custom_event.created")
    assert custom["custom_event_id"] == "e1" and custom["event_type"] == "wishlist"
    assert "profile.updated" in types
    assert "contact.resubscribed" not in [p["type"] for p in got if p["data"].get("profile_id") == kim]


def test_a_segments_entries_and_exits_are_told(
    client: Client, tenant: Tenant, hooks: Receiver, path: str
) -> None:
    made = create(client, tenant, hooks.url(path), "segment.entered", "segment.exited")
    rule = {"field": "country_id", "op": "eq", "value": "GB"}
    response = post(client, tenant, {"name": "in Britain", "rules": rule}, "/v2/segments")
    assert response.status_code == 201, response.text
    segment_id = response.json()["id"]
    push(client, tenant, [contact("c1", "ann@example.com", country_id="GB")])
    push(client, tenant, [contact("c1", "ann@example.com", country_id="FR")])
    got = eventually(
        lambda: len(hooks.delivered(path)) >= 2 and payloads(hooks, path, made["secret"]), "segment events"
    )
    [profile] = read(client, tenant, "/v2/profiles?email=ann@example.com")
    assert [(p["type"], p["data"]) for p in got] == [
        ("segment.entered", {"segment_id": segment_id, "profile_id": profile["id"]}),
        ("segment.exited", {"segment_id": segment_id, "profile_id": profile["id"]}),
    ]
