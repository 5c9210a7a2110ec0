"""Account isolation: an API key reaches its own account's data and never another account's.

``ISOLATION_CASES`` maps every ``/v2`` route the app serves (method, path template) to a case that
calls the route with one tenant's key on the other tenant's objects. A route without a case fails
``test_every_v2_route_has_an_isolation_case``, so the table grows with every endpoint.

The cases share one app for the module, with two *owners* (``alpha`` and ``bravo``) seeded once with
records of every type, a rejected record and known push requests. Each case runs against each owner
in turn, called by a new, empty account: its reads must find nothing of the owner's (lists are empty,
items are 404 problems), and its writes reusing the owner's ids must create records of its own and
leave everything the owner can read byte-for-byte as it was.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import httpx
import pytest
from litestar import Litestar, post
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.testing import TestClient
from sqlalchemy import Connection

from conftest import Tenant, eventually, push, wait_applied
from patron import accounts
from patron.api import account, email, entities, gdpr, lists, profiles, unsubscribes
from patron.api import push as push_api
from patron.api import report as report_api
from patron.api import segments as segments_api
from patron.api import webhooks as webhooks_api
from patron.app import V2_HANDLERS, create_app
from patron.config import Settings
from patron.ingest.queue import enqueue_operation
from patron.profiles.operations import UNSUBSCRIBE
from patron.profiles.requests import Unsubscribe
from patron.records.types import RECORD_TYPES
from patron.store import Store
from patron.webhooks import endpoints as webhooks
from patron.webhooks.requests import EndpointUpdate, NewEndpoint
from support.app import App, running_app

Client = TestClient[Any]
NOT_AUTHORISED = "API key is not authorised to access this resource"
PROBLEM = "application/problem+json"
#: How long a revoked key may keep working: the key cache lives 3 s, plus some slack.
REVOCATION_DEADLINE = 5.0
#: What the caller writes into its own records, so that they can be told from the owner's.
MINE = "written by the caller"
CALLER_EMAIL = "caller@example.com"
#: Added to an owner's id, it names an object no account has.
NOBODY = "-of-nobody"


# the owners' data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """The records an owner holds; every value names the owner (``tag``), so none can be mistaken."""

    contact_id: str
    collections: tuple[str, str]
    email: str
    firstname: str
    customer_id: str
    profile_id: str
    order_id: str
    rejected_order_id: str
    product_id: str
    variant_id: str
    title: str
    event_id: str
    event_type: str
    list_id: str

    @classmethod
    def of(cls, tag: str) -> Seed:
        return cls(
            contact_id=f"{tag}-contact",
            collections=(f"{tag}-newsletter", f"{tag}-loyalty"),
            email=f"{tag}.shopper@example.com",
            firstname=f"{tag.title()}firstname",
            customer_id=f"{tag}-customer",
            profile_id=f"{tag}-profile",
            order_id=f"{tag}/order-1",  # item routes take ids with '/'
            rejected_order_id=f"{tag}-rejected-order",
            product_id=f"{tag}-product",
            variant_id=f"{tag}-variant",
            title=f"{tag.title()} product title",
            event_id=f"{tag}-event",
            event_type=f"{tag}_visit",
            list_id=f"{tag}-list",
        )

    @property
    def values(self) -> tuple[str, ...]:
        """Every value above, the collections one by one."""
        return tuple(
            v for value in vars(self).values() for v in (value if isinstance(value, tuple) else [value])
        )

    @property
    def keys(self) -> tuple[str, ...]:
        """The ids the caller reuses for records of its own."""
        return (
            self.contact_id,
            *self.collections,
            self.order_id,
            self.product_id,
            self.event_id,
            self.list_id,
        )

    def pushes(self) -> list[list[dict[str, Any]]]:
        """One push per record type: the contact in both collections, an order and a rejected one, a
        product and its (inactive) variant, and a custom event naming the contact three ways."""
        contact = {
            "@type": "contact",
            "id": self.contact_id,
            "email": self.email,
            "firstname": self.firstname,
        }
        return [
            [
                {**contact, "@collection": collection, "@add_to_lists": [self.list_id]}
                for collection in self.collections
            ],
            [
                {
                    "@type": "order",
                    "id": self.order_id,
                    "status": "complete",
                    "customer": {"id": self.customer_id, "email": self.email, "firstname": self.firstname},
                    "lineitems": [{"product_id": self.product_id, "quantity": 1}],
                },
                {"@type": "order", "id": self.rejected_order_id, "currency": "not a currency"},
            ],
            [
                {"@type": "product", "id": self.product_id, "title": self.title, "is_active": True},
                {
                    "@type": "product",
                    "id": self.variant_id,
                    "title": self.title,
                    "is_variant": True,
                    "parent_id": self.product_id,
                    "is_active": False,
                },
            ],
            [
                {
                    "@type": "custom_event",
                    "id": self.event_id,
                    "event_type": self.event_type,
                    "identity_email": self.email,
                    "identity_account_id": self.customer_id,
                    "profile_id": self.profile_id,
                }
            ],
        ]

    def own_copies(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Per record type: the caller's own record under these ids, and the URL it is posted to and
        read back from."""
        collection = self.collections[0]
        return {
            "contact": (
                item("/v2/contacts", collection, self.contact_id),
                {
                    "@type": "contact",
                    "@collection": collection,
                    "id": self.contact_id,
                    "email": CALLER_EMAIL,
                    "firstname": MINE,
                },
            ),
            "order": (
                item("/v2/orders", self.order_id),
                {"@type": "order", "id": self.order_id, "status": MINE},
            ),
            "product": (
                item("/v2/products", self.product_id),
                {"@type": "product", "id": self.product_id, "title": MINE},
            ),
            "custom_event": (
                "/v2/custom-events",
                {
                    "@type": "custom_event",
                    "id": self.event_id,
                    "event_type": "caller_event",
                    "identity_email": CALLER_EMAIL,
                    "properties": {"note": MINE},
                },
            ),
        }


@dataclass(frozen=True)
class Owner:
    """A seeded account: its key, its records, and the ids of its push requests."""

    tenant: Tenant
    seed: Seed
    request_ids: tuple[str, ...]
    profile_id: str  # the profile the seed's records make
    merge_job: str
    deletion: str  # a data deletion request (of someone the account never had)
    message: str  # a transactional email (sandbox)
    webhook: str  # a webhook endpoint (disabled: nothing is sent)
    segment: str  # a segment of every profile (its id, a number: no trace on its own)

    @property
    def traces(self) -> tuple[str, ...]:
        """Every string that would give away this account or its data."""
        return (
            *identity(self.tenant),
            *self.seed.values,
            *self.request_ids,
            self.profile_id,
            self.merge_job,
            self.deletion,
            self.message,
            self.webhook,
            webhook_url(self.seed),
            segment_name(self.seed),
        )


def identity(tenant: Tenant) -> tuple[str, ...]:
    return tenant.hash, tenant.name, tenant.key


def item(base: str, *ids: str) -> str:
    return "/".join([base, *(quote(each, safe="") for each in ids)])


def path_ids(url: str) -> list[str]:
    """The segments of ``url``'s path, unquoted one by one (so that an id holding '/' stays whole)."""
    return [unquote(segment) for segment in urlsplit(url).path.split("/")]


def with_query(path: str, **params: str) -> str:
    return f"{path}?{urlencode(params)}"


def seed(app: App, name: str) -> Owner:
    """A new account holding :meth:`Seed.pushes`, all applied."""
    tenant = app.tenant(name)
    data = Seed.of(name.split()[0])
    replies = [push(app.client, tenant, records, wait=False) for records in data.pushes()]
    for reply in replies:
        wait_applied(app.client, tenant, reply["request_id"])
    assert sum(reply["rejected"] for reply in replies) == 1, replies
    [profile] = app.client.get(with_query("/v2/profiles", email=data.email), headers=tenant.headers).json()
    merge = app.client.post("/v2/merge-profile", json={"email": data.email}, headers=tenant.headers)
    assert merge.status_code == 202, merge.text
    unsubscribe_request = str(uuid.uuid4())
    app.store.write_blocking(
        lambda conn: enqueue_operation(
            conn,
            account_id(app, tenant),
            50_000,
            unsubscribe_request,
            UNSUBSCRIBE,
            Unsubscribe(data.email, "app", f"{data.firstname} asked"),
            accounts.now(),
        )
    )
    deletion = app.client.post(
        "/v2/data-deletion-requests",
        json={"email": f"gone-{data.email}", "comment": f"{data.firstname} asked"},
        headers=tenant.headers,
    )
    assert deletion.status_code == 202, deletion.text
    for request_id in (merge.json()["id"], unsubscribe_request, deletion.json()["id"]):
        wait_applied(app.client, tenant, request_id)
    saved = app.client.post(
        "/v2/templates",
        json={"subject": f"{data.title} news", "html": f"<p>{data.title}</p>"},
        headers=tenant.headers,
    )
    assert saved.status_code == 201, saved.text
    mail = app.client.post(
        "/v2/transactional-email/send",
        json={"from": {"email": data.email}, "to": {"email": data.email}, "template_id": 1, "sandbox": True},
        headers=tenant.headers,
    )
    assert mail.status_code == 202, mail.text
    request_ids = tuple(reply["request_id"] for reply in replies)

    def endpoint(conn: Connection) -> str:  # saved as if its host resolved; disabled, so never sent to
        account, at, url = accounts.get_account(conn, tenant.hash), accounts.now(), webhook_url(data)
        made = webhooks.create(conn, account.id, NewEndpoint(url=url, event_types=["order.applied"]), url, at)
        webhooks.change(conn, account.id, made.id, EndpointUpdate(enabled=False), None, at)
        return made.id

    everyone = {"name": segment_name(data), "rules": {"field": "stats.orders", "op": "gte", "value": 0}}
    segment = app.client.post("/v2/segments", json=everyone, headers=tenant.headers)
    assert segment.status_code == 201, segment.text
    segment_id = segment.json()["id"]
    eventually(
        lambda: app.client.get(f"/v2/segments/{segment_id}", headers=tenant.headers).json()["size"] == 1,
        "the owner's segment built",
    )
    ids = (profile["id"], merge.json()["id"], deletion.json()["id"], mail.json()["message_id"])
    return Owner(tenant, data, request_ids, *ids, app.store.write_blocking(endpoint), segment_id)


def segment_name(seed: Seed) -> str:
    return f"{seed.firstname} segment"


def webhook_url(seed: Seed) -> str:
    return f"https://hooks.{seed.firstname.lower()}.example/in"


def account_id(app: App, tenant: Tenant) -> int:
    return app.store.read_blocking(lambda conn: accounts.get_account(conn, tenant.hash)).id


# what an owner reads, by route -------------------------------------------------------------------


def collections_and_by_email(owner: Owner) -> list[str]:
    return ["/v2/contacts", with_query("/v2/contacts", email=owner.seed.email)]


def contacts_of_collections(owner: Owner) -> list[str]:
    return [item("/v2/contacts", collection) for collection in owner.seed.collections]


def events_filtered(owner: Owner) -> list[str]:
    s = owner.seed
    return [
        "/v2/custom-events",
        with_query("/v2/custom-events", event_type=s.event_type),
        with_query("/v2/custom-events", identity_email=s.email),
        with_query("/v2/custom-events", identity_account_id=s.customer_id),
        with_query("/v2/custom-events", profile_id=s.profile_id),
    ]


def order_lists(owner: Owner) -> list[str]:
    return ["/v2/orders", with_query("/v2/orders", orderby="timestamp_update")]


def product_lists(owner: Owner) -> list[str]:
    return [
        "/v2/products",
        with_query("/v2/products", active="true"),
        with_query("/v2/products", active="false", includeVariants="true"),
    ]


def push_error_lists(owner: Owner) -> list[str]:
    return ["/v2/push/_errors"]


def contact_items(owner: Owner) -> list[str]:
    return [item("/v2/contacts", collection, owner.seed.contact_id) for collection in owner.seed.collections]


def order_items(owner: Owner) -> list[str]:
    return [item("/v2/orders", owner.seed.order_id)]


def product_items(owner: Owner) -> list[str]:
    return [item("/v2/products", owner.seed.product_id), item("/v2/products", owner.seed.variant_id)]


def push_statuses(owner: Owner) -> list[str]:
    return [item("/v2/push", request_id) for request_id in owner.request_ids]


def profile_lists(owner: Owner) -> list[str]:
    return [
        "/v2/profiles",
        with_query("/v2/profiles", email=owner.seed.email),
        with_query("/v2/profiles", updateSince="2000-01-01"),
    ]


def list_lists_of(owner: Owner) -> list[str]:
    return ["/v2/lists", with_query("/v2/lists", mode="all")]


def unsubscribe_lists(owner: Owner) -> list[str]:
    return ["/v2/unsubscribes", with_query("/v2/unsubscribes", type="app")]


def profile_items(owner: Owner) -> list[str]:
    return [item("/v2/profiles", owner.profile_id)]


def list_items(owner: Owner) -> list[str]:
    return [item("/v2/lists", owner.seed.list_id)]


def merge_jobs(owner: Owner) -> list[str]:
    return [item("/v2/merge-profile", owner.merge_job)]


def webhook_lists(owner: Owner) -> list[str]:
    return ["/v2/webhooks"]


def webhook_items(owner: Owner) -> list[str]:
    return [item("/v2/webhooks", owner.webhook)]


def deletion_lists(owner: Owner) -> list[str]:
    return ["/v2/data-deletion-requests"]


def deletion_items(owner: Owner) -> list[str]:
    return [item("/v2/data-deletion-requests", owner.deletion)]


def template_lists(owner: Owner) -> list[str]:
    return ["/v2/templates"]


def template_items(owner: Owner) -> list[str]:
    return ["/v2/templates/1"]


def message_items(owner: Owner) -> list[str]:
    return [item("/v2/transactional-email", owner.message)]


LISTS = (
    collections_and_by_email,
    contacts_of_collections,
    events_filtered,
    order_lists,
    product_lists,
    push_error_lists,
    profile_lists,
    list_lists_of,
    unsubscribe_lists,
    deletion_lists,
    template_lists,
    webhook_lists,
)
ITEMS = (
    contact_items,
    order_items,
    product_items,
    push_statuses,
    profile_items,
    list_items,
    merge_jobs,
    deletion_items,
    template_items,
    message_items,
    webhook_items,
)


def snapshot(client: Client, owner: Owner) -> dict[str, tuple[int, bytes]]:
    """Everything the owner reads through the API, as status and bytes by URL."""
    responses = {url: get(client, owner.tenant, url) for urls in (*LISTS, *ITEMS) for url in urls(owner)}
    return {url: (response.status_code, response.content) for url, response in responses.items()}


# assertions --------------------------------------------------------------------------------------


def get(client: Client, tenant: Tenant, url: str) -> httpx.Response:
    return client.get(url, headers=tenant.headers)


def assert_no_trace_of(response: httpx.Response, traces: Iterable[str], echoed: Iterable[str] = ()) -> None:
    """None of ``traces`` is in the body, once the strings the caller itself sent (``echoed``) are cut."""
    text = response.text
    for sent in echoed:
        text = text.replace(sent, "")
    assert [trace for trace in traces if trace in text] == [], response.text


def assert_lists_hide(client: Client, caller: Tenant, owner: Owner, urls: list[str]) -> None:
    """Each of ``urls`` lists some of the owner's data for the owner, and nothing for the caller."""
    for url in urls:
        theirs = get(client, owner.tenant, url)
        assert theirs.status_code == 200, theirs.text
        assert theirs.json() != [], url
        mine = get(client, caller, url)
        assert mine.status_code == 200, mine.text
        assert mine.json() == [], url
        assert_no_trace_of(mine, owner.traces)


def problem(response: httpx.Response, unsay: str = "") -> dict[str, Any]:
    """The problem in ``response`` (without ``unsay`` wherever it was said), its request id left out."""
    assert response.headers["content-type"].split(";")[0] == PROBLEM, response.text
    found: dict[str, Any] = json.loads(response.text.replace(unsay, ""))
    found.pop("request_id")
    return found


def assert_items_hide(client: Client, caller: Tenant, owner: Owner, urls: list[str]) -> None:
    """Each of ``urls`` is one of the owner's objects for the owner; for the caller it is a 404 problem
    just like the one for an object no account has, and gives away nothing but the ids in the URL."""
    for url in urls:
        assert get(client, owner.tenant, url).status_code == 200, url
        mine, nobodys = get(client, caller, url), get(client, caller, url + NOBODY)
        assert (mine.status_code, nobodys.status_code) == (404, 404), mine.text
        assert problem(mine) == problem(nobodys, unsay=NOBODY)
        assert_no_trace_of(mine, owner.traces, echoed=path_ids(url))


def assert_writes_stay_home(
    client: Client, caller: Tenant, owner: Owner, record_types: Iterable[str], *, via_push: bool = False
) -> None:
    """The caller writes its own record under the owner's ids, for each of ``record_types`` (to the
    record's URL, or to ``/v2/push``): it reads back its own record, with nothing of the owner's but
    the ids, and everything the owner reads is unchanged to the byte."""
    before = snapshot(client, owner)
    copies = owner.seed.own_copies()
    for record_type in record_types:
        url, record = copies[record_type]
        if via_push:
            reply = push(client, caller, [record])
        else:
            response = client.post(url, json=record, headers=caller.headers)
            assert response.status_code in (201, 202), response.text
            reply = response.json()
            wait_applied(client, caller, reply["request_id"])
        assert (reply["accepted"], reply["rejected"]) == (1, 0), reply
        mine = get(client, caller, url)
        assert mine.status_code == 200, mine.text
        assert MINE in mine.text, mine.text
        assert_no_trace_of(mine, owner.traces, echoed=owner.seed.keys)
    assert snapshot(client, owner) == before


# the cases ---------------------------------------------------------------------------------------

#: A case calls a route with ``caller``'s key on ``owner``'s objects and asserts that it sees only
#: ``caller``'s data, none of ``owner``'s (and, for a write, that it changes nothing of ``owner``'s).
IsolationCase = Callable[[Client, Tenant, Owner], None]


def assert_own_account(client: Client, caller: Tenant, other_traces: Iterable[str]) -> None:
    response = client.get("/v2/account", headers=caller.headers)
    assert response.status_code == 200, response.text
    assert response.json()["account_hash"] == caller.hash
    assert response.json()["name"] == caller.name
    assert_no_trace_of(response, other_traces)


def read_account(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_own_account(client, caller, owner.traces)


def read_the_report(client: Client, caller: Tenant, owner: Owner) -> None:
    """The caller's integration check is of its own, empty account (every record type never pushed),
    with nothing of the owner's, whose own check counts its records."""

    def never_pushed(tenant: Tenant) -> list[str]:
        response = get(client, tenant, "/v2/account/report?rule=freshness.never_pushed")
        assert response.status_code == 200, response.text
        return [sample["id"] for sample in response.json()["samples"]]

    assert never_pushed(owner.tenant) == []
    assert never_pushed(caller) == ["contact", "order", "product"]
    mine = get(client, caller, "/v2/account/report")
    assert mine.status_code == 200, mine.text
    assert_no_trace_of(mine, owner.traces)


def list_collections_or_find_by_email(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_lists_hide(client, caller, owner, collections_and_by_email(owner))


def list_contacts_of_a_collection(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_lists_hide(client, caller, owner, contacts_of_collections(owner))


def read_a_contact(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_items_hide(client, caller, owner, contact_items(owner))


def write_a_contact(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_writes_stay_home(client, caller, owner, ["contact"])


def list_custom_events(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_lists_hide(client, caller, owner, events_filtered(owner))


def write_a_custom_event(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_writes_stay_home(client, caller, owner, ["custom_event"])


def list_orders(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_lists_hide(client, caller, owner, order_lists(owner))


def read_an_order(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_items_hide(client, caller, owner, order_items(owner))


def write_an_order(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_writes_stay_home(client, caller, owner, ["order"])


def list_products(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_lists_hide(client, caller, owner, product_lists(owner))


def read_a_product(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_items_hide(client, caller, owner, product_items(owner))


def write_a_product(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_writes_stay_home(client, caller, owner, ["product"])


def list_push_errors(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_lists_hide(client, caller, owner, push_error_lists(owner))


def read_a_push_status(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_items_hide(client, caller, owner, push_statuses(owner))


def push_records_of_every_type(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_writes_stay_home(client, caller, owner, list(RECORD_TYPES), via_push=True)


def list_profiles(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_lists_hide(client, caller, owner, profile_lists(owner))


def read_a_profile(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_items_hide(client, caller, owner, profile_items(owner))


def merge_the_owners_profiles(client: Client, caller: Tenant, owner: Owner) -> None:
    """The caller names the owner's profile every way it can: its merge job fails, for want of a
    profile of its own, and the owner's profile is as it was."""
    before = snapshot(client, owner)
    s = owner.seed
    body = {
        "survivor": {"type": "email_address", "value": s.email},
        "customers_to_merge": [
            {"type": "customer_id", "value": s.customer_id},
            {"type": "profile_hash", "value": owner.profile_id},
        ],
    }
    for attempt in (body, {"email": s.email, "profile_id": owner.profile_id}):
        response = client.post("/v2/merge-profile", json=attempt, headers=caller.headers)
        assert response.status_code == 202, response.text
        job = wait_job(client, caller, response.json()["id"])
        assert (job["status"], job["survivor"], job["merged"]) == ("failed", None, []), job
        assert_no_trace_of(
            client.get(item("/v2/merge-profile", job["id"]), headers=caller.headers),
            owner.traces,
            echoed=[s.email, owner.profile_id],
        )
    assert snapshot(client, owner) == before


def wait_job(client: Client, tenant: Tenant, job_id: str) -> dict[str, Any]:
    wait_applied(client, tenant, job_id)
    job: dict[str, Any] = client.get(item("/v2/merge-profile", job_id), headers=tenant.headers).json()
    return job


def read_a_merge_job(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_items_hide(client, caller, owner, merge_jobs(owner))


def list_the_lists(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_lists_hide(client, caller, owner, list_lists_of(owner))


def read_a_list(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_items_hide(client, caller, owner, list_items(owner))


def read_a_lists_changes(client: Client, caller: Tenant, owner: Owner) -> None:
    """The owner's list has changes; for the caller it is a 404 like a list nobody has."""
    list_id = owner.seed.list_id
    theirs = get(client, owner.tenant, item("/v2/lists", list_id, "changes"))
    assert theirs.status_code == 200 and theirs.json() != [], theirs.text
    mine = get(client, caller, item("/v2/lists", list_id, "changes"))
    nobodys = get(client, caller, item("/v2/lists", list_id + NOBODY, "changes"))
    assert (mine.status_code, nobodys.status_code) == (404, 404), mine.text
    assert problem(mine) == problem(nobodys)
    assert_no_trace_of(mine, owner.traces)


def create_a_list(client: Client, caller: Tenant, owner: Owner) -> None:
    """A list under the owner's list id is the caller's own."""
    before = snapshot(client, owner)
    response = client.post(
        "/v2/lists", json={"id": owner.seed.list_id, "title": MINE}, headers=caller.headers
    )
    assert response.status_code == 201, response.text
    assert (response.json()["title"], response.json()["size"]) == (MINE, 0)
    assert_no_trace_of(get(client, caller, "/v2/lists"), owner.traces, echoed=[owner.seed.list_id])
    assert snapshot(client, owner) == before


def change_a_list(client: Client, caller: Tenant, owner: Owner) -> None:
    before = snapshot(client, owner)
    url = item("/v2/lists", owner.seed.list_id)
    response = client.put(url, json={"title": MINE, "archived": True}, headers=caller.headers)
    if response.status_code == 200:  # the caller's own list of that id (made by create_a_list)
        assert response.json()["title"] == MINE
    else:
        assert response.status_code == 404, response.text
        assert_no_trace_of(response, owner.traces, echoed=[owner.seed.list_id])
    assert snapshot(client, owner) == before


def list_webhooks(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_lists_hide(client, caller, owner, webhook_lists(owner))


def read_a_webhook(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_items_hide(client, caller, owner, webhook_items(owner))


def assert_webhook_hidden(
    client: Client, caller: Tenant, owner: Owner, method: str, suffix: str, body: Any
) -> None:
    """The caller's request on the owner's endpoint is the 404 of an endpoint no account has, and
    changes nothing the owner reads."""
    before = snapshot(client, owner)
    url = item("/v2/webhooks", owner.webhook) + suffix
    nobody = item("/v2/webhooks", owner.webhook + NOBODY) + suffix
    mine, nobodys = (client.request(method, u, json=body, headers=caller.headers) for u in (url, nobody))
    assert (mine.status_code, nobodys.status_code) == (404, 404), mine.text
    assert problem(mine) == problem(nobodys, unsay=NOBODY)
    assert_no_trace_of(mine, owner.traces, echoed=[owner.webhook])
    assert snapshot(client, owner) == before


def read_a_webhooks_deliveries(client: Client, caller: Tenant, owner: Owner) -> None:
    assert get(client, owner.tenant, item("/v2/webhooks", owner.webhook) + "/deliveries").status_code == 200
    assert_webhook_hidden(client, caller, owner, "GET", "/deliveries", None)


def change_a_webhook(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_webhook_hidden(client, caller, owner, "PUT", "", {"enabled": True, "url": "https://1.1.1.1/mine"})


def delete_a_webhook(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_webhook_hidden(client, caller, owner, "DELETE", "", None)


def replay_a_webhook(client: Client, caller: Tenant, owner: Owner) -> None:
    span = {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}
    assert_webhook_hidden(client, caller, owner, "POST", "/replay", span)


#: A segment id no account has (segment ids are numbers).
NO_SEGMENT = "999999999999"


def list_segments(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_lists_hide(client, caller, owner, ["/v2/segments"])


def assert_segment_hidden(
    client: Client, caller: Tenant, owner: Owner, method: str, suffix: str, body: Any
) -> None:
    """The caller's request on the owner's segment is the 404 of a segment no account has, and
    changes nothing the owner reads."""
    before = snapshot(client, owner)
    url, nobody = (item("/v2/segments", segment) + suffix for segment in (owner.segment, NO_SEGMENT))
    if method == "GET":
        assert get(client, owner.tenant, url).status_code == 200, url
    mine, nobodys = (client.request(method, u, json=body, headers=caller.headers) for u in (url, nobody))
    assert (mine.status_code, nobodys.status_code) == (404, 404), mine.text
    assert problem(mine) == problem(nobodys)
    assert_no_trace_of(mine, owner.traces)
    assert snapshot(client, owner) == before


def read_a_segment(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_segment_hidden(client, caller, owner, "GET", "", None)


def read_a_segments_profiles(client: Client, caller: Tenant, owner: Owner) -> None:
    assert get(client, owner.tenant, item("/v2/segments", owner.segment) + "/profiles").json() != []
    assert_segment_hidden(client, caller, owner, "GET", "/profiles", None)


def read_a_segments_changes(client: Client, caller: Tenant, owner: Owner) -> None:
    assert get(client, owner.tenant, item("/v2/segments", owner.segment) + "/changes").json() != []
    assert_segment_hidden(client, caller, owner, "GET", "/changes", None)


def change_a_segment(client: Client, caller: Tenant, owner: Owner) -> None:
    body = {"name": "mine", "rules": {"field": "stats.orders", "op": "gte", "value": 5}}
    assert_segment_hidden(client, caller, owner, "PUT", "", body)


def delete_a_segment(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_segment_hidden(client, caller, owner, "DELETE", "", None)


def export_a_segment(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_segment_hidden(client, caller, owner, "POST", "/export", {"list_id": "exported"})


def create_a_segment(client: Client, caller: Tenant, owner: Owner) -> None:
    """The caller's new segment is its own: its count and members are of its own profiles."""
    before = snapshot(client, owner)
    body = {"name": "mine", "rules": {"field": "stats.orders", "op": "gte", "value": 0}}
    response = client.post("/v2/segments", json=body, headers=caller.headers)
    assert response.status_code == 201, response.text
    assert [s["name"] for s in get(client, caller, "/v2/segments").json()] == ["mine"]
    assert_no_trace_of(
        get(client, caller, item("/v2/segments", response.json()["id"]) + "/profiles"), owner.traces
    )
    assert snapshot(client, owner) == before


def create_a_webhook(client: Client, caller: Tenant, owner: Owner) -> None:
    """The caller's new endpoint is its own: the owner's list is as it was."""
    before = snapshot(client, owner)
    body = {"url": "https://1.1.1.1/mine", "event_types": ["segment.exited"]}
    response = client.post("/v2/webhooks", json=body, headers=caller.headers)
    assert response.status_code == 201, response.text
    assert [e["url"] for e in get(client, caller, "/v2/webhooks").json()] == ["https://1.1.1.1/mine"]
    assert_no_trace_of(get(client, caller, "/v2/webhooks"), owner.traces)
    assert snapshot(client, owner) == before


def list_deletion_requests(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_lists_hide(client, caller, owner, deletion_lists(owner))


def read_a_deletion_request(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_items_hide(client, caller, owner, deletion_items(owner))


def request_the_owners_deletion(client: Client, caller: Tenant, owner: Owner) -> None:
    """The caller asks to anonymise the owner's customer by every identity: it anonymises nothing,
    and the owner reads everything as it was."""
    before = snapshot(client, owner)
    s = owner.seed
    body = {
        "email": s.email,
        "identities": [
            {"type": "customer_id", "value": s.customer_id},
            {"type": "profile_id", "value": owner.profile_id},
        ],
    }
    response = client.post("/v2/data-deletion-requests", json=body, headers=caller.headers)
    assert response.status_code == 202, response.text
    path = item("/v2/data-deletion-requests", response.json()["id"])
    done = eventually(
        lambda: (found := get(client, caller, path).json())["status"] == "completed" and found, path
    )
    assert done["summary"] == "0 contact records anonymised, 0 orders anonymised, 0 events anonymised", done
    assert snapshot(client, owner) == before


def export_a_profile(client: Client, caller: Tenant, owner: Owner) -> None:
    """The owner's profile exports; for the caller it is a 404 like a profile nobody has."""
    theirs = get(client, owner.tenant, item("/v2/profiles", owner.profile_id, "export"))
    assert theirs.status_code == 200 and owner.seed.email in theirs.text, theirs.text
    mine = get(client, caller, item("/v2/profiles", owner.profile_id, "export"))
    nobodys = get(client, caller, item("/v2/profiles", owner.profile_id + NOBODY, "export"))
    assert (mine.status_code, nobodys.status_code) == (404, 404), mine.text
    assert problem(mine, unsay=owner.profile_id) == problem(nobodys, unsay=owner.profile_id + NOBODY)
    assert_no_trace_of(mine, owner.traces, echoed=[owner.profile_id])


def read_a_profiles_activity(client: Client, caller: Tenant, owner: Owner) -> None:
    """The owner's timeline reads; for the caller it is a 404 like a profile nobody has."""
    theirs = get(client, owner.tenant, item("/v2/profiles", owner.profile_id, "activity"))
    assert theirs.status_code == 200, theirs.text
    mine = get(client, caller, item("/v2/profiles", owner.profile_id, "activity"))
    nobodys = get(client, caller, item("/v2/profiles", owner.profile_id + NOBODY, "activity"))
    assert (mine.status_code, nobodys.status_code) == (404, 404), mine.text
    assert problem(mine, unsay=owner.profile_id) == problem(nobodys, unsay=owner.profile_id + NOBODY)
    assert_no_trace_of(mine, owner.traces, echoed=[owner.profile_id])


def list_templates(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_lists_hide(client, caller, owner, template_lists(owner))


def read_a_template(client: Client, caller: Tenant, owner: Owner) -> None:
    """Template ids are per account: the owner's template 1 is not the caller's."""
    theirs = get(client, owner.tenant, "/v2/templates/1")
    assert theirs.status_code == 200, theirs.text
    mine, nobodys = get(client, caller, "/v2/templates/1"), get(client, caller, "/v2/templates/2")
    assert (mine.status_code, nobodys.status_code) == (404, 404), mine.text
    assert problem(mine, unsay="1") == problem(nobodys, unsay="2")
    assert_no_trace_of(mine, owner.traces)


def save_templates(client: Client, caller: Tenant, owner: Owner) -> None:
    """The caller's templates are its own, whatever their ids; the owner's stay as they were."""
    before = snapshot(client, owner)
    created = client.post("/v2/templates", json={"subject": MINE, "html": MINE}, headers=caller.headers)
    assert created.status_code == 201, created.text
    replaced = client.put(
        f"/v2/templates/{created.json()['id']}",
        json={"subject": MINE, "html": "<p/>"},
        headers=caller.headers,
    )
    assert replaced.status_code == 200, replaced.text
    missing = client.put("/v2/templates/2", json={"subject": MINE, "html": "x"}, headers=caller.headers)
    assert missing.status_code == 404, missing.text
    assert_no_trace_of(get(client, caller, "/v2/templates"), owner.traces)
    assert snapshot(client, owner) == before


def replace_a_template(client: Client, caller: Tenant, owner: Owner) -> None:
    save_templates(client, caller, owner)


def send_with_the_owners_template(client: Client, caller: Tenant, owner: Owner) -> None:
    """The owner's template 1 and profile are not the caller's to send."""
    before = snapshot(client, owner)
    for body in (
        {"template_id": 1, "to": {"email": CALLER_EMAIL}},
        {"html": "x", "subject": "x", "profile_id": owner.profile_id},
    ):
        response = client.post(
            "/v2/transactional-email/send",
            json={"from": {"email": CALLER_EMAIL}, **body},
            headers=caller.headers,
        )
        assert response.status_code == 404, response.text  # no such template, no such profile
        assert_no_trace_of(response, owner.traces, echoed=[owner.profile_id])
    assert snapshot(client, owner) == before


def read_a_message(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_items_hide(client, caller, owner, message_items(owner))


def list_unsubscribes(client: Client, caller: Tenant, owner: Owner) -> None:
    assert_lists_hide(client, caller, owner, unsubscribe_lists(owner))


def route(handler: HTTPRouteHandler) -> tuple[str, str]:
    """The (method, path template) ``handler`` is served at, named as :func:`v2_routes` names it."""
    [method] = handler.http_methods
    [path] = handler.paths
    return method, HTTPRoute(path=f"/v2{path}", route_handlers=[handler]).path_format


ISOLATION_CASES: dict[tuple[str, str], IsolationCase] = {
    route(account.read_account): read_account,
    route(report_api.read_report): read_the_report,
    route(entities.list_collections): list_collections_or_find_by_email,
    route(entities.list_contacts): list_contacts_of_a_collection,
    route(entities.read_contact): read_a_contact,
    route(entities.write_contact): write_a_contact,
    route(entities.list_custom_events): list_custom_events,
    route(entities.write_custom_event): write_a_custom_event,
    route(entities.list_orders): list_orders,
    route(entities.read_order): read_an_order,
    route(entities.write_order): write_an_order,
    route(entities.list_products): list_products,
    route(entities.read_product): read_a_product,
    route(entities.write_product): write_a_product,
    route(push_api.push_errors): list_push_errors,
    route(push_api.push_status): read_a_push_status,
    route(push_api.push): push_records_of_every_type,
    route(profiles.list_profiles): list_profiles,
    route(profiles.read_profile): read_a_profile,
    route(profiles.merge_profile): merge_the_owners_profiles,
    route(profiles.merge_status): read_a_merge_job,
    route(lists.list_lists): list_the_lists,
    route(lists.read_list): read_a_list,
    route(lists.list_changes): read_a_lists_changes,
    route(lists.create_list): create_a_list,
    route(lists.update_list): change_a_list,
    route(segments_api.list_segments): list_segments,
    route(segments_api.read_segment): read_a_segment,
    route(segments_api.segment_profiles): read_a_segments_profiles,
    route(segments_api.segment_changes): read_a_segments_changes,
    route(segments_api.create_segment): create_a_segment,
    route(segments_api.update_segment): change_a_segment,
    route(segments_api.delete_segment): delete_a_segment,
    route(segments_api.export_segment): export_a_segment,
    route(webhooks_api.list_webhooks): list_webhooks,
    route(webhooks_api.read_webhook): read_a_webhook,
    route(webhooks_api.webhook_deliveries): read_a_webhooks_deliveries,
    route(webhooks_api.create_webhook): create_a_webhook,
    route(webhooks_api.update_webhook): change_a_webhook,
    route(webhooks_api.delete_webhook): delete_a_webhook,
    route(webhooks_api.replay_webhook): replay_a_webhook,
    route(unsubscribes.list_unsubscribes): list_unsubscribes,
    route(gdpr.list_deletions): list_deletion_requests,
    route(gdpr.read_deletion): read_a_deletion_request,
    route(gdpr.request_deletion): request_the_owners_deletion,
    route(profiles.export_profile): export_a_profile,
    route(profiles.profile_activity): read_a_profiles_activity,
    route(email.list_templates): list_templates,
    route(email.read_template): read_a_template,
    route(email.create_template): save_templates,
    route(email.replace_template): replace_a_template,
    route(email.send): send_with_the_owners_template,
    route(email.read_message): read_a_message,
}


def is_documentation(path: str) -> bool:
    return path in ("/v2/docs", "/v2/swagger.json") or path.startswith("/v2/docs/")


def is_automatic_options(handler: HTTPRouteHandler) -> bool:
    """Litestar's own ``OPTIONS`` handler on every route: it answers ``Allow`` and nothing else."""
    return handler.fn.__qualname__.startswith("HTTPRoute.create_options_handler.")


def v2_routes(app: Litestar) -> set[tuple[str, str]]:
    """Every (method, path template) the app serves under ``/v2``, documentation aside."""
    return {
        (method, route.path_format)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        and route.path_format.startswith("/v2/")
        and not is_documentation(route.path_format)
        for method, (handler, _) in route.route_handler_map.items()
        if not is_automatic_options(handler)
    }


def missing_cases(app: Litestar) -> list[tuple[str, str]]:
    return sorted(v2_routes(app) - ISOLATION_CASES.keys())


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, new_database_url: Callable[[], str | None]
) -> Iterator[App]:
    with running_app(tmp_path_factory.mktemp("isolation"), new_database_url()) as app:
        yield app


@pytest.fixture(scope="module")
def owners(shared: App) -> tuple[Owner, Owner]:
    return seed(shared, "alpha outfitters"), seed(shared, "bravo boutique")


@pytest.fixture
def alpha(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant("alpha outfitters")


@pytest.fixture
def bravo(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant("bravo boutique")


# the table covers every route --------------------------------------------------------------------


def test_every_v2_route_has_an_isolation_case(client: TestClient) -> None:
    missing = missing_cases(client.app)
    assert not missing, (
        f"no account-isolation case for {missing}: add one to ISOLATION_CASES in tests/test_isolation.py"
        " that calls the route with one tenant's key on the other tenant's objects and asserts that"
        " none of the other tenant's data comes back"
    )


def test_every_isolation_case_names_a_route_the_app_serves(client: TestClient) -> None:
    assert sorted(ISOLATION_CASES.keys() - v2_routes(client.app)) == []


def test_a_new_v2_route_without_a_case_is_reported(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    @post("/audiences", include_in_schema=False, sync_to_thread=False)
    def create_audience() -> None: ...

    monkeypatch.setattr("patron.app.V2_HANDLERS", [*V2_HANDLERS, create_audience])
    assert ("POST", "/v2/audiences") in missing_cases(create_app(settings, store))


# the cases ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", sorted(ISOLATION_CASES), ids=" ".join)
def test_a_key_never_reaches_the_other_accounts_data(
    shared: App, owners: tuple[Owner, Owner], route: tuple[str, str]
) -> None:
    case = ISOLATION_CASES[route]
    for owner in owners:  # alpha's data, then bravo's, each time for a new account's key
        case(shared.client, shared.tenant("newcomer"), owner)


# keys --------------------------------------------------------------------------------------------


def assert_not_authorised(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].split(";")[0] == "application/problem+json"
    assert response.json()["detail"] == NOT_AUTHORISED


def revoke_the_key(store: Store, tenant: Tenant) -> None:
    [key] = store.read_blocking(lambda conn: accounts.list_keys(conn, tenant.hash))
    store.write_blocking(lambda conn: accounts.revoke_key(conn, key.id))


def first_refusal(client: TestClient, tenant: Tenant, within: float) -> httpx.Response:
    """The first answer to ``tenant``'s key that is not a 200, or the last 200 once ``within`` s passed."""
    deadline = time.monotonic() + within
    while True:
        response = client.get("/v2/account", headers=tenant.headers)
        if response.status_code != 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_a_revoked_key_is_refused_within_five_seconds(
    client: TestClient, store: Store, alpha: Tenant, bravo: Tenant
) -> None:
    assert client.get("/v2/account", headers=bravo.headers).status_code == 200  # cached as valid
    revoke_the_key(store, bravo)
    assert_not_authorised(first_refusal(client, bravo, within=REVOCATION_DEADLINE))
    assert_own_account(client, alpha, identity(bravo))  # the other account's key still works


@pytest.mark.parametrize("header", ["X-Ometria-Auth", "x-ometria-auth", "X-OMETRIA-AUTH"])
def test_the_key_header_name_is_case_insensitive(
    client: TestClient, alpha: Tenant, bravo: Tenant, header: str
) -> None:
    response = client.get("/v2/account", headers={header: alpha.key})
    assert response.status_code == 200, response.text
    assert response.json()["account_hash"] == alpha.hash
    assert_no_trace_of(response, identity(bravo))
