"""``patron.client`` against a real ``patron serve``: batching, outcomes, listings, retries and pacing.

One server per module (and backend); each test on an account of its own. Retries go through
``support.flaky.Flaky``, a proxy that refuses or drops requests when told to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from itertools import groupby
from typing import Any

import msgspec
import pytest

from conftest import Tenant, eventually
from patron.client import (
    AsyncClient,
    Client,
    ConnectionFailed,
    InvalidRequest,
    NotAuthorised,
    NotFound,
    PushResult,
    RateLimited,
    Retries,
    ServerError,
)
from patron.client.pacing import LOW_BACKLOG, PROBE, SLOWEST, Pacer, retry_after
from patron.records.fields import MAX_RECORD_BYTES, RECORD_TOO_LARGE
from patron.records.types import Contact, CustomEvent, Order, Product
from support.flaky import Flaky
from support.records import minimal
from support.served import Served, served_fixture

served = served_fixture()

PUSH = ("POST", "/v2/push")


@pytest.fixture
def tenant(served: Served) -> Tenant:
    return served.tenant()


@pytest.fixture
def api(served: Served, tenant: Tenant) -> Iterator[Client]:
    with served.client(tenant) as client:
        yield client


@pytest.fixture
def proxy(served: Served) -> Iterator[Flaky]:
    with Flaky(served.server.url, served.server.ca) as flaky:
        yield flaky


@pytest.fixture
def proxied(proxy: Flaky, tenant: Tenant) -> Iterator[Client]:
    """A client of the account through the proxy."""
    with Client(proxy.url, tenant.key) as client:
        yield client


def order(number: int, **fields: Any) -> dict[str, Any]:
    return minimal("order", f"o-{number}", **{"currency": "GBP", "grand_total": 10.0, **fields})


def per_request(result: PushResult) -> list[int]:
    """How many records each request carried, in the order sent."""
    return [len(list(group)) for _, group in groupby(o.request_id for o in result.outcomes if o.request_id)]


def is_applied(client: Client, request_id: str) -> bool:
    return bool(client.push_status(request_id)["status"] == "applied")


def applied(client: Client, result: PushResult) -> None:
    """Wait until the worker has applied every request of ``result``."""
    for request_id in dict.fromkeys(o.request_id for o in result.outcomes if o.request_id):
        eventually(partial(is_applied, client, request_id), f"push {request_id}")


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in records]


# batching ---------------------------------------------------------------------------------------


def test_records_go_out_a_hundred_to_a_request(api: Client) -> None:
    result = api.push(order(i) for i in range(250))
    assert result.accepted == 250 and result.rejected == []
    assert per_request(result) == [100, 100, 50]
    assert api.stats.requests == 3 and api.stats.statuses == {202: 3}


def test_records_past_the_byte_budget_are_split_by_bytes(served: Served, tenant: Tenant) -> None:
    records = [order(i, properties={"notes": "x" * 6_100}) for i in range(10)]
    sizes = [len(msgspec.json.encode(r)) for r in records]
    assert all(6_000 < s < 6_600 for s in sizes)  # three to a 20,000-byte body, not four
    with served.client(tenant, max_request_bytes=20_000) as api:
        result = api.push(records)
        assert result.accepted == 10
        assert per_request(result) == [3, 3, 3, 1]
        applied(api, result)
        assert api.orders.get("o-9")["properties"] == {"notes": "x" * 6_100}


def test_a_record_too_large_is_refused_locally_and_its_neighbours_go(api: Client) -> None:
    huge = order(1, properties={"notes": "x" * MAX_RECORD_BYTES})
    result = api.push([order(0), huge, order(2)])
    first, refused, last = result.outcomes
    assert refused.accepted is False and refused.request_id is None
    assert (refused.index, refused.id, refused.path, refused.message) == (1, "o-1", "root", RECORD_TOO_LARGE)
    assert first.accepted and last.accepted and first.request_id == last.request_id
    assert api.stats.requests == 1
    applied(api, result)
    assert api.orders.get("o-2")["id"] == "o-2"
    with pytest.raises(NotFound):
        api.orders.get("o-1")


def test_a_change_of_type_starts_a_new_request(api: Client) -> None:
    contacts = [minimal("contact", f"c-{i}") for i in range(3)]
    result = api.push([contacts[0], contacts[1], order(0), order(1), contacts[2]])
    assert result.accepted == 5
    assert per_request(result) == [2, 2, 1]


def test_a_record_without_a_known_type_is_refused_locally(api: Client) -> None:
    result = api.push([order(0), {"id": "x-1"}, order(1), {"@type": "basket", "id": "x-2"}, ["not", "one"]])
    untyped, unknown, not_a_record = result.outcomes[1], result.outcomes[3], result.outcomes[4]
    assert (untyped.accepted, untyped.id, untyped.path, untyped.message) == (
        False,
        "x-1",
        "root > @type",
        "is missing",
    )
    assert (unknown.accepted, unknown.path, unknown.message) == (
        False,
        "root > @type",
        "is not one of contact, order, product, custom_event",
    )
    assert (not_a_record.accepted, not_a_record.path) == (False, "root")
    assert [o.accepted for o in result.outcomes] == [True, False, True, False, False]
    assert per_request(result) == [2] and api.stats.requests == 1


# outcomes ---------------------------------------------------------------------------------------


def test_each_record_gets_its_outcome_in_the_callers_order(api: Client) -> None:
    records = [
        order(0),
        order(1),
        order(2, grand_total="abc"),
        order(3),
        minimal("contact", "c-0"),
        minimal("contact", "c-1", email="not an email"),
        minimal("contact", "c-2"),
    ]
    result = api.push(records)
    assert [o.index for o in result.outcomes] == list(range(7))
    assert [o.id for o in result.outcomes] == ids(records)
    assert [o.accepted for o in result.outcomes] == [True, True, False, True, True, False, True]
    bad_order, bad_contact = result.rejected
    assert (bad_order.index, bad_order.path) == (2, "root > grand_total")
    assert (bad_contact.index, bad_contact.path) == (5, "root > email")
    # The server's own error, as GET /v2/push/_errors keeps it.
    kept = {e["id"]: e for e in api.errors.iter()}
    assert bad_order.message == kept["o-2"]["error_message"]
    assert bad_contact.message == kept["c-1"]["error_message"]
    orders_request, contacts_request = dict.fromkeys(o.request_id for o in result.outcomes)
    assert orders_request and contacts_request and orders_request != contacts_request
    assert all(o.request_id == orders_request for o in result.outcomes[:4])
    applied(api, result)
    assert [api.orders.get(f"o-{i}")["grand_total"] for i in (0, 1, 3)] == [10.0] * 3
    assert api.contacts.get("default", "c-2")["email"] == "c-2@example.com"
    with pytest.raises(NotFound):
        api.orders.get("o-2")
    with pytest.raises(NotFound):
        api.contacts.get("default", "c-1")


def test_record_types_push_as_dicts_do(api: Client) -> None:
    records = [
        Order(id="o-typed", grand_total=12.5, currency="GBP", timestamp="2026-01-02T10:00:00Z"),
        order(1),
        Contact(id="c-typed", email="typed@example.com", firstname="Ada"),
        Product(id="p-typed", title="Teapot", price=20.0, currency="GBP"),
        CustomEvent(id="e-typed", event_type="signup", identity_email="typed@example.com"),
    ]
    result = api.push(records)
    assert result.accepted == 5 and per_request(result) == [2, 1, 1, 1]
    assert [o.id for o in result.outcomes] == ["o-typed", "o-1", "c-typed", "p-typed", "e-typed"]
    applied(api, result)
    assert api.orders.get("o-typed")["grand_total"] == 12.5
    assert api.contacts.get("default", "c-typed")["firstname"] == "Ada"
    assert api.products.get("p-typed")["title"] == "Teapot"
    assert ids(list(api.custom_events.iter())) == ["e-typed"]


# listings ---------------------------------------------------------------------------------------


def test_orders_iter_pages_through_everything_and_since_filters(api: Client) -> None:
    applied(api, api.push(order(i) for i in range(600)))
    before = api.stats.requests
    assert ids(list(api.orders.iter())) == [f"o-{i}" for i in range(600)]
    assert api.stats.requests - before == 3  # 250, 250, 100
    moment = datetime.now(UTC)
    assert list(api.orders.iter(since=moment)) == []
    with pytest.raises(InvalidRequest) as refused:
        api.orders.page(since="yesterday")
    assert refused.value.fields == ["since"]
    applied(api, api.push([order(5, grand_total=99.0), order(600)]))
    changed = list(api.orders.iter(since=moment))
    assert sorted(ids(changed)) == ["o-5", "o-600"]
    assert {o["id"]: o["grand_total"] for o in changed}["o-5"] == 99.0
    by_update = list(api.orders.iter(orderby="timestamp_update"))
    assert len(by_update) == 601
    assert sorted(ids(by_update[-2:])) == ["o-5", "o-600"]  # the two changed last come last
    assert ids(list(api.orders.iter(since=moment.isoformat(), orderby="timestamp_update"))) == ids(
        by_update[-2:]
    )


def test_contacts_profiles_events_and_errors_are_listed(api: Client, tenant: Tenant) -> None:
    assert api.account()["account_hash"] == tenant.hash
    vip = [minimal("contact", f"v-{i}", **{"@collection": "vip"}) for i in range(3)]
    records = [
        *vip,
        minimal("contact", "d-0", email="ada@example.com", firstname="Ada"),
        minimal("custom_event", "e-0", identity_email="ada@example.com"),
        minimal("custom_event", "e-1", event_type="review", identity_email="ada@example.com"),
        minimal("custom_event", "e-2", event_type="review", identity_email="v-0@example.com"),
        minimal("custom_event", "e-3", event_type="review", identity_email=None),  # no one's
    ]
    result = api.push(records)
    assert [o.accepted for o in result.outcomes] == [True] * 7 + [False]
    applied(api, result)
    assert ids(list(api.contacts.iter(collection="vip"))) == ["v-0", "v-1", "v-2"]
    assert ids(list(api.contacts.iter())) == ["d-0"]
    assert api.contacts.get("vip", "v-1")["email"] == "v-1@example.com"
    assert ids(api.contacts.by_email("ada@example.com")) == ["d-0"]
    (profile,) = api.profiles.by_email("ada@example.com")
    assert api.profiles.get(profile["id"])["email"] == "ada@example.com"
    assert profile["id"] in ids(list(api.profiles.iter(since=datetime.now(UTC).date())))
    assert ids(list(api.custom_events.iter(event_type="review"))) == ["e-1", "e-2"]
    (error,) = api.errors.iter()
    assert (error["id"], error["error_message"]) == ("e-3", result.rejected[0].message)


# retries ----------------------------------------------------------------------------------------


def test_429s_are_retried_after_their_retry_after(proxy: Flaky, proxied: Client, api: Client) -> None:
    proxy.refuse(429, 3, retry_after=1)
    result = proxied.push([order(0)])
    assert result.accepted == 1
    assert proxy.answered == [(*PUSH, 429)] * 3 + [(*PUSH, 202)]
    assert proxied.stats.statuses == {429: 3, 202: 1}
    applied(api, result)
    assert api.orders.get("o-0")["id"] == "o-0"


def test_5xx_are_retried(proxy: Flaky, proxied: Client) -> None:
    proxy.refuse(503, 2)
    proxy.refuse(502, 1)
    assert proxied.push([order(0)]).accepted == 1
    assert [status for _, _, status in proxy.answered] == [503, 503, 502, 202]


def test_a_server_gone_away_is_waited_for(proxy: Flaky, proxied: Client) -> None:
    proxy.down(2)
    result = proxied.push([order(0)])
    assert result.accepted == 1
    assert proxy.dropped >= 1 and proxied.stats.connection_failures >= 1
    assert proxy.answered == [(*PUSH, 202)]


def test_a_refused_key_is_not_retried(proxy: Flaky, proxied: Client) -> None:
    proxy.refuse(403, 1)
    with pytest.raises(NotAuthorised) as raised:
        proxied.push([order(0)])
    assert raised.value.status == 403 and "test proxy" in raised.value.detail
    assert proxy.answered == [(*PUSH, 403)]


def test_a_bad_request_is_not_retried(proxy: Flaky, proxied: Client) -> None:
    proxy.refuse(400, 1)
    with pytest.raises(InvalidRequest) as raised:
        proxied.orders.page()
    assert raised.value.status == 400
    assert proxy.answered == [("GET", "/v2/orders", 400)]
    # A push refused as a whole: every record of the request rejected with the server's detail.
    proxy.refuse(400, 1)
    result = proxied.push([order(0), order(1)])
    assert [(o.accepted, o.request_id, o.path) for o in result.outcomes] == [(False, None, "body")] * 2
    assert all("test proxy" in str(o.message) for o in result.outcomes)
    assert proxy.answered[1:] == [(*PUSH, 400)]


@pytest.mark.parametrize(
    ("misbehave", "raised"),
    [
        (lambda proxy: proxy.refuse(429, 1000, retry_after=1), RateLimited),
        (lambda proxy: proxy.refuse(503, 1000), ServerError),
        (lambda proxy: proxy.down(60), ConnectionFailed),
    ],
    ids=["429", "503", "down"],
)
def test_retries_give_up(
    misbehave: Callable[[Flaky], None], raised: type[Exception], proxy: Flaky, tenant: Tenant, api: Client
) -> None:
    misbehave(proxy)
    with Client(proxy.url, tenant.key, retries=Retries(give_up_after=1)) as impatient, pytest.raises(raised):
        impatient.push([order(0)])
    assert len(proxy.answered) + proxy.dropped >= 2  # tried again before giving up
    assert all(status != 202 for _, _, status in proxy.answered)
    with pytest.raises(NotFound):
        api.orders.get("o-0")


# pacing -----------------------------------------------------------------------------------------


def test_pushes_keep_to_the_rate_the_server_announces(served: Served) -> None:
    tenant = served.tenant("--push", "5/second", "--data", "unlimited")
    with served.client(tenant) as api:
        result = api.push(order(i) for i in range(3_000))
        assert result.accepted == 3_000
        # paced by the client's clock, counted by the server's as requests arrive: one held up on the
        # way may land in the same second as a later one (a 429, retried); unpaced, most would be
        assert api.stats.statuses[202] == 30 and api.stats.statuses.get(429, 0) <= 2, api.stats.statuses
        assert api.pacers["push"].announced


@pytest.mark.unit
def test_a_nearly_full_backlog_spaces_requests_out() -> None:
    full, nearly_full = Pacer(), Pacer()
    full.learn({"x-queuesize-remaining": "50000", "x-queuesize-limit": "50000"})
    nearly_full.learn({"x-queuesize-remaining": "100", "x-queuesize-limit": "50000"})
    assert [full.slot(), full.slot(), full.slot()] == [0, 0, 0]
    pressure = 1 - (100 / 50000) / LOW_BACKLOG
    wait = nearly_full.slot()
    assert wait == pytest.approx(pressure * SLOWEST, abs=0.05)  # spaced from the answer learnt
    assert nearly_full.slot() == pytest.approx(wait, abs=0.01)  # asking takes no slot
    # Room again: no spacing (the server announced no rate).
    nearly_full.learn({"x-queuesize-remaining": "20000", "x-queuesize-limit": "50000"})
    assert [nearly_full.slot(), nearly_full.slot()] == [0, 0]


@pytest.mark.unit
def test_one_request_goes_before_the_first_answer_tells_the_rate() -> None:
    pacer = Pacer()
    assert pacer.slot() == 0
    assert pacer.slot() == PROBE  # the second asks again until the first is answered
    pacer.lost()  # the first got no answer: it (retried) or another may go
    assert pacer.slot() == 0
    pacer.learn({"ratelimit-policy": '"push";q=8;w=1'})
    assert 0.12 < pacer.slot() <= pacer.interval  # spaced from the answer's arrival
    pacer.refused(2.0)
    assert pacer.slot() > 1.9


@pytest.mark.unit
def test_the_announced_rate_sets_the_interval() -> None:
    pacer = Pacer()
    pacer.learn({"ratelimit-policy": '"push";q=8;w=1'})
    assert pacer.announced and pacer.interval == pytest.approx(1 / 8, rel=0.02) and pacer.interval > 1 / 8
    pacer.learn({"ratelimit-policy": '"data";q=6;w=60'})
    assert pacer.interval == pytest.approx(10, rel=0.02)
    fixed = Pacer(rate=2)
    fixed.learn({"ratelimit-policy": '"push";q=8;w=1'})
    assert fixed.interval == 0.5 and not fixed.announced


@pytest.mark.unit
def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({}) == 1.0 and retry_after({"retry-after": "soon"}, default=2.0) == 2.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after({"retry-after": later}) <= 30
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_after({"retry-after": earlier}) == 0.0


# the async client -------------------------------------------------------------------------------


def test_async_pushes_in_parallel_never_reorder_one_records_writes(
    served: Served, tenant: Tenant, proxy: Flaky
) -> None:
    # 1,000 orders over 400 ids, 100 to a request: request n writes the ids of request n - 4, with a
    # higher total. The first request to arrive is answered 503 and retried a second later; the
    # requests after it must wait for it, not overtake it, or its older totals would be applied last.
    records = [order(i % 400, grand_total=float(1 + i // 400)) for i in range(1000)]
    proxy.refuse(503, 1, retry_after=1)

    async def run() -> tuple[PushResult, dict[str, float]]:
        async with (
            AsyncClient(proxy.url, tenant.key, concurrency=4) as pusher,
            AsyncClient(served.server.url, tenant.key, verify=str(served.server.ca)) as reader,
        ):
            result = await pusher.push(records)
            async with asyncio.timeout(30):
                for request_id in dict.fromkeys(o.request_id for o in result.outcomes):
                    while (await reader.push_status(str(request_id)))["status"] != "applied":
                        await asyncio.sleep(0.05)
            stored = {o["id"]: o["grand_total"] async for o in reader.orders.iter()}
            return result, stored

    result, stored = asyncio.run(run())
    assert result.accepted == 1000 and [o.index for o in result.outcomes] == list(range(1000))
    assert per_request(result) == [100] * 10
    assert [status for _, _, status in proxy.answered].count(202) == 10
    assert stored == {f"o-{k}": 3.0 if k < 200 else 2.0 for k in range(400)}
