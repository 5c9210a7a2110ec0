"""Random histories of pushes, merges and tag events keep the customer view consistent.

Each example sends a random sequence of requests to a new account without waiting between them (so
the worker applies several in one round, in arrival order): new contacts and email changes (a contact
id pushed again with another email), orders and their cancellations, list changes, profile merges,
and the website tag's beacons from two browsers and two sessions (identifies with profile data,
``setProfileData``, page views). Then:

- the profiles the worker kept are exactly what a full rebuild computes from the stored records;
- no two profiles share an identifier, and each is one a record has (or an order had, or the tag
  identified);
- every valid order with a customer id or email counts once, on one profile: the profiles' revenue adds
  up to the orders';
- each list's size and totals, which the worker keeps as it rewrites profiles, add up its members'
  profiles, as a recount from scratch finds them.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Tenant, wait_applied
from patron import accounts
from patron.profiles import build, lists
from patron.tracking import wire
from support.app import App, Client, app_fixtures
from test_profiles import all_profiles

shared, client, make_tenant = app_fixtures()
EXAMPLES = settings(max_examples=30, deadline=None, derandomize=True, database=None)

emails = st.sampled_from([f"person{i}@example.com" for i in range(4)])
customer_ids = st.sampled_from(["C0", "C1", "C2"])
list_ids = st.lists(st.sampled_from(["L1", "L2"]), max_size=2, unique=True)


@st.composite
def contacts(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {
        "@type": "contact",
        "@collection": draw(st.sampled_from(["default", "shop2"])),
        "id": draw(st.sampled_from(["a", "b", "c"])),
    }
    for name, values in (
        ("email", emails),
        ("customer_id", customer_ids),
        ("firstname", st.sampled_from(["Ann", "Bob", "Cy"])),
        ("lastname", st.sampled_from(["Lee", "Ng"])),
    ):
        if draw(st.booleans()):
            record[name] = draw(values)
    if draw(st.booleans()):
        record["marketing_optin"] = draw(st.sampled_from(["EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT"]))
    if added := draw(list_ids):
        record["@add_to_lists"] = added
    if removed := draw(list_ids):
        record["@remove_from_lists"] = removed
    return record


@st.composite
def orders(draw: st.DrawFn) -> dict[str, Any]:
    customer: dict[str, Any] = {}
    for name, values in (("email", emails), ("id", customer_ids)):
        if draw(st.booleans()):
            customer[name] = draw(values)
    return {
        "@type": "order",
        "id": draw(st.sampled_from(["o1", "o2", "o3"])),
        "grand_total": draw(st.integers(1, 100)),
        "status": draw(st.sampled_from(["complete", "complete", "cancelled"])),
        "customer": customer,
    }


cancellations = st.builds(
    lambda order_id: {"@type": "order", "id": order_id, "status": "cancelled"},
    st.sampled_from(["o1", "o2", "o3"]),
)
identifiers = st.one_of(
    st.builds(lambda e: {"type": "email_address", "value": e}, emails),
    st.builds(lambda c: {"type": "customer_id", "value": c}, customer_ids),
)
merges = st.builds(
    lambda survivor, others: {"merge": {"survivor": survivor, "customers_to_merge": others}},
    identifiers,
    st.lists(identifiers, min_size=1, max_size=2),
)
#: What the tag may say of a profile: fields the contacts have too, and others; some do not fit.
tag_data = st.fixed_dictionaries(
    {"firstname": st.sampled_from(["Di", "Ed"])},
    optional={
        "lastname": st.sampled_from(["Lee", "Ox"]),
        "gender": st.sampled_from(["f", "Male", "x"]),
        "country_id": st.sampled_from(["gb", "ZZ"]),
        "customer_id": customer_ids,
    },
)
#: The tag's beacons, from two browsers and two session ids (the browser named by the step is the
#: account's own: see send).
beacons = st.builds(
    lambda cid, sid, kind, email, data: {
        "beacon": {
            "cid": cid,
            "sid": sid,
            "type": kind,
            "d": {"uiid": email, "profile": data} if kind != "pageview" else {"type": "product", "pid": "p1"},
        }
    },
    st.sampled_from(["b1", "b2"]),
    st.sampled_from(["s1", "s2"]),
    st.sampled_from(["identify", "identify", "profile", "pageview"]),
    emails,
    tag_data,
)
#: Steps (a third of them the tag's), each with whether to wait until it is applied before the next is
#: sent.
histories = st.lists(
    st.tuples(
        st.sampled_from([contacts(), orders(), cancellations, merges, beacons, beacons]).flatmap(lambda s: s),
        st.booleans(),
    ),
    max_size=10,
)


def send(client: Client, tenant: Tenant, step: dict[str, Any]) -> str | None:
    """Send one step without waiting for it; the id of its queued request (a beacon's has none)."""
    if "beacon" in step:
        event = {**step["beacon"], "cid": f"{tenant.hash}{step['beacon']['cid']}"}  # this account's
        answer = client.get(f"/track/v3/{tenant.hash}/event.gif", params={"data": wire.encode(event)})
        assert answer.status_code == 200
        return None
    if "merge" in step:
        response = client.post("/v2/merge-profile", json=step["merge"], headers=tenant.headers)
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id
    response = client.post("/v2/push", json=[step], headers=tenant.headers)
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def expected_revenue(history: list[dict[str, Any]]) -> int:
    """The valid orders' revenue, from the orders as last merged (the records' merge rules)."""
    final: dict[str, dict[str, Any]] = {}
    for step in history:
        if step.get("@type") == "order":
            final[step["id"]] = {**final.get(step["id"], {}), **step}
    return sum(o["grand_total"] for o in final.values() if o["status"] != "cancelled" and o.get("customer"))


def mentioned(client: Client, tenant: Tenant) -> set[tuple[str, str]]:
    """The identifiers the account's stored contacts and orders have now."""
    found = set()
    for collection in ("default", "shop2"):
        for record in client.get(f"/v2/contacts/{collection}?limit=250", headers=tenant.headers).json():
            found |= {("email", record.get("email")), ("customer_id", record.get("customer_id"))}
    for record in client.get("/v2/orders?limit=250", headers=tenant.headers).json():
        customer = record.get("customer") or {}
        found |= {("email", customer.get("email")), ("customer_id", customer.get("id"))}
    return found


def identified(history: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The emails the tag identified (a profile holding one is made when none does)."""
    return {
        ("email", step["beacon"]["d"]["uiid"])
        for step in history
        if "beacon" in step and step["beacon"]["type"] == "identify"
    }


def ordered(history: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The identifiers any order of the history named."""
    customers = [step.get("customer") or {} for step in history if step.get("@type") == "order"]
    return {
        (kind, c[name])
        for c in customers
        for kind, name in (("email", "email"), ("customer_id", "id"))
        if name in c
    }


def rebuild(app: App, tenant: Tenant) -> int:
    """Recompute every profile of the account with the rebuild's function; how many changed."""
    account = app.store.read_blocking(lambda conn: accounts.get_account(conn, tenant.hash))
    ids = app.store.read_blocking(lambda conn: build.live_profiles(conn, account.id))
    changed: int = app.store.write_blocking(lambda conn: build.refresh(conn, account.id, ids, accounts.now()))
    return changed


def assert_list_totals_hold(app: App, client: Client, tenant: Tenant, kept: list[dict[str, Any]]) -> None:
    """Every list's size and totals are its members' profiles' (and a recount changes nothing)."""
    shown = client.get("/v2/lists", params={"mode": "all", "limit": 250}, headers=tenant.headers).json()
    for view in shown:
        members = [p for p in kept if view["id"] in {m["id"] for m in p["lists"]}]
        assert (view["size"], view["total_orders"]) == (
            len(members),
            sum(p["stats"]["orders"] for p in members),
        ), view
        assert abs(view["total_revenue"] - sum(p["stats"]["revenue"] for p in members)) < 0.005, view
    account = app.store.read_blocking(lambda conn: accounts.get_account(conn, tenant.hash))
    assert app.store.write_blocking(lambda conn: lists.recount(conn, account.id, accounts.now())) == 0


def assert_merges_hold(client: Client, tenant: Tenant, jobs: list[str], live: set[str]) -> None:
    """Every profile a completed job merged away is gone from the list, and its id answers with a
    live profile (its survivor, or the survivor's own survivor)."""
    for job_id in jobs:
        job = client.get(f"/v2/merge-profile/{job_id}", headers=tenant.headers).json()
        assert job["status"] in ("completed", "failed"), job
        for merged in job["merged"]:
            assert merged not in live, job
            answer = client.get(f"/v2/profiles/{merged}", headers=tenant.headers).json()
            assert answer["id"] in live, (job, answer)


@EXAMPLES
@given(history=histories)
def test_any_history_gives_the_profiles_a_rebuild_gives(
    shared: App, history: list[tuple[dict[str, Any], bool]]
) -> None:
    client, tenant = shared.client, shared.tenant("history")
    sent = []
    for step, wait in [*history, ({"@type": "contact", "id": "last", "email": "last@example.com"}, True)]:
        sent.append(request_id := send(client, tenant, step))
        if wait and request_id is not None:
            wait_applied(client, tenant, request_id)
    kept = all_profiles(client, tenant)

    assert rebuild(shared, tenant) == 0
    assert all_profiles(client, tenant) == kept
    assert_list_totals_hold(shared, client, tenant, kept)

    held = [(i["type"], i["id"]) for profile in kept for i in profile["identities"]]
    assert len(held) == len(set(held)), held
    # contacts give up an identifier they no longer have; an order that named a customer keeps the
    # customer's profile known by it, even once the order names another; the tag's profile data
    # gives none
    steps = [step for step, _ in history]
    assert set(held) <= mentioned(client, tenant) | ordered(steps) | identified(steps), held
    assert sum(p["stats"]["revenue"] for p in kept) == expected_revenue(steps)
    jobs = [request_id for (step, _), request_id in zip(history, sent, strict=False) if "merge" in step]
    assert_merges_hold(client, tenant, jobs, {p["id"] for p in kept})
