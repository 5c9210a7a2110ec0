"""``POST /v2/merge-profile`` and ``GET /v2/merge-profile/{job_id}`` through HTTP: the job's life, what a
merge does to profiles, stats, identities and contacts, every identifier type, the older ``email``
form, a survivor that matches nothing, body validation, the merge rate limit and job isolation.

Every test starts from two profiles of one person that Patron never merges by itself: contacts with
one email and different customer ids (C1 holds the email; C2 only shows it), each with an order.
The module shares one running app (see ``support.app``); each test uses fresh accounts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from conftest import Tenant, push
from support.app import Client, app_fixtures
from support.http import assert_problem, barrier, errors, post, read

shared, client, make_tenant = app_fixtures()

EMAIL = "ann@example.com"
PHONES = {"C1": "+447700900001", "C2": "+447700900002"}
JOB_KEYS = {"id", "status", "survivor", "merged", "error", "timestamp_created", "timestamp_completed"}


# helpers ----------------------------------------------------------------------------------------


def customer(value: str) -> dict[str, str]:
    return {"type": "customer_id", "value": value}


def order(order_id: str, customer_id: str, total: float) -> dict[str, Any]:
    return {
        "@type": "order",
        "id": order_id,
        "grand_total": total,
        "currency": "GBP",
        "timestamp": "2024-01-01T00:00:00Z",
        "customer": {"id": customer_id},
    }


def two_profiles(client: Client, tenant: Tenant) -> tuple[str, str]:
    """Ann as C1 (contact default/a, order o1 of 10) and as C2 (contact shop2/b, order o2 of 5): the ids
    of C1's profile and C2's."""
    push(
        client,
        tenant,
        [
            {
                "@type": "contact",
                "id": "a",
                "customer_id": "C1",
                "email": EMAIL,
                "firstname": "Ann",
                "phone_number": PHONES["C1"],
            },
            {
                "@type": "contact",
                "@collection": "shop2",
                "id": "b",
                "customer_id": "C2",
                "email": EMAIL,
                "phone_number": PHONES["C2"],
            },
        ],
    )
    push(client, tenant, [order("o1", "C1", 10), order("o2", "C2", 5)])
    found = read(client, tenant, f"/v2/profiles?email={EMAIL}")
    assert [doc["customer_id"] for doc in found] == ["C1", "C2"]
    return found[0]["id"], found[1]["id"]


def third_profile(client: Client, tenant: Tenant) -> str:
    """Another person (C3, bea@example.com): their profile's id."""
    push(client, tenant, [{"@type": "contact", "id": "c", "customer_id": "C3", "email": "bea@example.com"}])
    (doc,) = read(client, tenant, "/v2/profiles?email=bea@example.com")
    return str(doc["id"])


def start_merge(client: Client, tenant: Tenant, body: Any) -> dict[str, Any]:
    """POST a merge that is accepted (202); the queued job."""
    response = post(client, tenant, body, "/v2/merge-profile")
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_job(client: Client, tenant: Tenant, job_id: str, timeout: float = 30) -> dict[str, Any]:
    """Poll ``GET /v2/merge-profile/{job_id}`` until the job is no longer queued; the job."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = read(client, tenant, f"/v2/merge-profile/{job_id}")
        if job["status"] != "queued":
            return job
        assert time.monotonic() < deadline, f"merge {job_id} still queued after {timeout} s: {job}"
        time.sleep(0.02)


def merge(client: Client, tenant: Tenant, body: Any) -> dict[str, Any]:
    """Merge and wait for the job to finish; the finished job."""
    return wait_job(client, tenant, start_merge(client, tenant, body)["id"])


def new_form(survivor: dict[str, Any], *to_merge: dict[str, Any]) -> dict[str, Any]:
    return {"survivor": survivor, "customers_to_merge": list(to_merge)}


C1_KEEPS_C2 = new_form(customer("C1"), customer("C2"))


def profile(client: Client, tenant: Tenant, profile_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = read(client, tenant, f"/v2/profiles/{profile_id}")
    return doc


def ann_profiles(client: Client, tenant: Tenant) -> list[str]:
    return [doc["id"] for doc in read(client, tenant, f"/v2/profiles?email={EMAIL}")]


def live_profiles(client: Client, tenant: Tenant) -> list[str]:
    return [doc["id"] for doc in read(client, tenant, "/v2/profiles?limit=250")]


# the new form: survivor and customers_to_merge --------------------------------------------------


def test_two_customer_ids_with_one_email_stay_two_profiles(client: Client, tenant: Tenant) -> None:
    first, second = two_profiles(client, tenant)
    assert profile(client, tenant, first)["identities"] == [
        {"id": "C1", "type": "customer_id"},
        {"id": EMAIL, "type": "email"},
    ]
    assert profile(client, tenant, second)["identities"] == [{"id": "C2", "type": "customer_id"}]
    assert [profile(client, tenant, p)["stats"]["orders"] for p in (first, second)] == [1, 1]


def test_a_merge_is_accepted_as_a_queued_job(client: Client, tenant: Tenant) -> None:
    two_profiles(client, tenant)
    job = start_merge(client, tenant, C1_KEEPS_C2)
    assert set(job) == JOB_KEYS
    assert str(uuid.UUID(job["id"])) == job["id"]
    assert (job["status"], job["survivor"], job["merged"], job["error"]) == ("queued", None, [], None)
    assert job["timestamp_completed"] is None
    assert datetime.fromisoformat(job["timestamp_created"]).utcoffset() == timedelta(0)


def test_a_merge_job_completes_with_the_survivor_and_the_merged(client: Client, tenant: Tenant) -> None:
    first, second = two_profiles(client, tenant)
    queued = start_merge(client, tenant, C1_KEEPS_C2)
    job = wait_job(client, tenant, queued["id"])
    assert set(job) == JOB_KEYS
    assert (job["id"], job["status"], job["survivor"], job["merged"], job["error"]) == (
        queued["id"],
        "completed",
        first,
        [second],
        None,
    )
    assert job["timestamp_created"] == queued["timestamp_created"]
    created, completed = (datetime.fromisoformat(job[f"timestamp_{k}"]) for k in ("created", "completed"))
    assert completed.utcoffset() == timedelta(0)
    assert completed >= created


def test_a_merged_id_answers_with_the_survivor(client: Client, tenant: Tenant) -> None:
    first, second = two_profiles(client, tenant)
    merge(client, tenant, C1_KEEPS_C2)
    survivor = profile(client, tenant, first)
    assert survivor["id"] == first
    assert profile(client, tenant, second) == survivor


def test_a_merged_profile_is_no_longer_listed(client: Client, tenant: Tenant) -> None:
    first, _ = two_profiles(client, tenant)
    merge(client, tenant, C1_KEEPS_C2)
    assert live_profiles(client, tenant) == [first]
    assert ann_profiles(client, tenant) == [first]


def test_the_survivor_counts_the_orders_of_both(client: Client, tenant: Tenant) -> None:
    first, _ = two_profiles(client, tenant)
    merge(client, tenant, C1_KEEPS_C2)
    stats = profile(client, tenant, first)["stats"]
    assert (stats["orders"], stats["revenue"]) == (2, 15)


def test_the_survivor_holds_the_identities_of_both_and_keeps_its_customer_id(
    client: Client, tenant: Tenant
) -> None:
    first, _ = two_profiles(client, tenant)
    merge(client, tenant, C1_KEEPS_C2)
    doc = profile(client, tenant, first)
    assert doc["identities"] == [
        {"id": "C1", "type": "customer_id"},
        {"id": "C2", "type": "customer_id"},
        {"id": EMAIL, "type": "email"},
    ]
    assert doc["customer_id"] == "C1"


def test_a_younger_survivor_keeps_its_own_customer_id(client: Client, tenant: Tenant) -> None:
    _, second = two_profiles(client, tenant)
    merge(client, tenant, new_form(customer("C2"), customer("C1")))
    doc = profile(client, tenant, second)
    assert (doc["id"], doc["customer_id"]) == (second, "C2")
    assert [i["id"] for i in doc["identities"] if i["type"] == "customer_id"] == ["C1", "C2"]


def test_a_merge_keeps_both_contacts(client: Client, tenant: Tenant) -> None:
    two_profiles(client, tenant)
    merge(client, tenant, C1_KEEPS_C2)
    assert read(client, tenant, "/v2/contacts/default/a")["customer_id"] == "C1"
    assert read(client, tenant, "/v2/contacts/shop2/b")["customer_id"] == "C2"


def test_a_later_order_of_the_merged_customer_counts_on_the_survivor(client: Client, tenant: Tenant) -> None:
    first, _ = two_profiles(client, tenant)
    merge(client, tenant, C1_KEEPS_C2)
    push(client, tenant, [order("o3", "C2", 7)])
    stats = profile(client, tenant, first)["stats"]
    assert (stats["orders"], stats["revenue"]) == (3, 22)
    assert live_profiles(client, tenant) == [first]


# identifier types -------------------------------------------------------------------------------


def identifier(kind: str, who: str, ids: dict[str, str]) -> dict[str, str]:
    """An identifier of ``kind`` naming the profile of customer ``who`` (C1 or C2)."""
    values = {
        "customer_id": who,
        "phone_number": PHONES[who],
        "profile_hash": ids[who],
        "email_address": EMAIL,  # held by C1's profile, shown by C2's: it names C1's first
    }
    return {"type": kind, "value": values[kind]}


@pytest.mark.parametrize(
    ("survivor", "to_merge"),
    [
        pytest.param(("email_address", "C1"), ("customer_id", "C2"), id="email-survives"),
        pytest.param(("customer_id", "C2"), ("email_address", "C1"), id="email-merged"),
        pytest.param(("phone_number", "C1"), ("customer_id", "C2"), id="phone-survives"),
        pytest.param(("customer_id", "C2"), ("phone_number", "C1"), id="phone-merged"),
        pytest.param(("profile_hash", "C2"), ("customer_id", "C1"), id="hash-survives"),
        pytest.param(("customer_id", "C1"), ("profile_hash", "C2"), id="hash-merged"),
    ],
)
def test_every_identifier_type_names_a_survivor_or_a_profile_to_merge(
    client: Client, tenant: Tenant, survivor: tuple[str, str], to_merge: tuple[str, str]
) -> None:
    first, second = two_profiles(client, tenant)
    ids = {"C1": first, "C2": second}
    body = new_form(identifier(*survivor, ids), identifier(*to_merge, ids))
    job = merge(client, tenant, body)
    kept, gone = ids[survivor[1]], ids[to_merge[1]]
    assert (job["status"], job["survivor"], job["merged"], job["error"]) == ("completed", kept, [gone], None)
    assert ann_profiles(client, tenant) == [kept]
    assert profile(client, tenant, gone)["id"] == kept


def test_a_merged_id_as_profile_hash_names_its_survivor(client: Client, tenant: Tenant) -> None:
    first, second = two_profiles(client, tenant)
    merge(client, tenant, C1_KEEPS_C2)
    bea = third_profile(client, tenant)
    job = merge(client, tenant, new_form({"type": "profile_hash", "value": second}, customer("C3")))
    assert (job["status"], job["survivor"], job["merged"]) == ("completed", first, [bea])
    assert profile(client, tenant, bea)["id"] == first
    assert profile(client, tenant, first)["identities"] == [
        {"id": "C1", "type": "customer_id"},
        {"id": "C2", "type": "customer_id"},
        {"id": "C3", "type": "customer_id"},
        {"id": EMAIL, "type": "email"},
        {"id": "bea@example.com", "type": "email"},
    ]


def test_merging_a_profile_into_itself_completes_with_nothing_merged(client: Client, tenant: Tenant) -> None:
    first, second = two_profiles(client, tenant)
    body = new_form(customer("C1"), customer("C1"), {"type": "profile_hash", "value": first})
    job = merge(client, tenant, body)
    assert (job["status"], job["survivor"], job["merged"], job["error"]) == ("completed", first, [], None)
    assert ann_profiles(client, tenant) == [first, second]


# the older form: email, and optionally profile_id -----------------------------------------------


def test_the_email_form_merges_every_profile_with_the_email_into_the_oldest(
    client: Client, tenant: Tenant
) -> None:
    first, second = two_profiles(client, tenant)
    job = merge(client, tenant, {"email": EMAIL})
    assert (job["status"], job["survivor"], job["merged"], job["error"]) == (
        "completed",
        first,
        [second],
        None,
    )
    assert ann_profiles(client, tenant) == [first]
    assert profile(client, tenant, first)["stats"]["orders"] == 2


def test_the_email_form_with_a_profile_id_makes_that_profile_the_survivor(
    client: Client, tenant: Tenant
) -> None:
    first, second = two_profiles(client, tenant)
    job = merge(client, tenant, {"email": EMAIL, "profile_id": second})
    assert (job["status"], job["survivor"], job["merged"], job["error"]) == (
        "completed",
        second,
        [first],
        None,
    )
    assert ann_profiles(client, tenant) == [second]
    doc = profile(client, tenant, first)
    assert (doc["id"], doc["stats"]["orders"]) == (second, 2)


# a survivor that matches nothing ----------------------------------------------------------------


NOPE = new_form(customer("NOPE"), customer("C2"))


def test_a_survivor_that_matches_nothing_fails_the_job_and_changes_nothing(
    client: Client, tenant: Tenant
) -> None:
    first, second = two_profiles(client, tenant)
    queued = start_merge(client, tenant, NOPE)
    job = wait_job(client, tenant, queued["id"])
    assert (job["status"], job["survivor"], job["merged"]) == ("failed", None, [])
    assert "survivor" in job["error"] and "NOPE" in job["error"]
    assert job["timestamp_completed"] is not None
    assert ann_profiles(client, tenant) == [first, second]
    assert profile(client, tenant, second)["id"] == second
    assert profile(client, tenant, first)["stats"]["orders"] == 1


def test_a_failed_merge_is_listed_among_the_push_errors(client: Client, tenant: Tenant) -> None:
    two_profiles(client, tenant)
    job = wait_job(client, tenant, start_merge(client, tenant, NOPE)["id"])
    (error,) = errors(client, tenant)
    assert (error["request_id"], error["record_type"], error["index"]) == (job["id"], "merge", 0)
    assert error["error_message"] == job["error"]
    assert error["record"] == NOPE


# validation -------------------------------------------------------------------------------------


C2 = customer("C2")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(new_form(customer("C1"), *[C2] * 6), "root > customers_to_merge", id="six-to-merge"),
        pytest.param(new_form(customer("C1")), "root > customers_to_merge", id="none-to-merge"),
        pytest.param(
            new_form({"type": "twitter", "value": "C1"}, C2), "root > survivor > type", id="twitter-survivor"
        ),
        pytest.param(
            new_form(customer("C1"), {"type": "twitter", "value": "ann"}),
            "root > customers_to_merge > 0 > type",
            id="twitter-to-merge",
        ),
        pytest.param({"survivor": customer("C1")}, "root > customers_to_merge", id="survivor-alone"),
        pytest.param({}, "root > survivor", id="empty-object"),
        pytest.param({"customers_to_merge": [C2]}, "root > survivor", id="no-survivor-nor-email"),
    ],
)
def test_an_invalid_merge_is_a_400_problem_and_nothing_is_queued(
    client: Client, tenant: Tenant, body: Any, field: str
) -> None:
    first, second = two_profiles(client, tenant)
    assert_problem(post(client, tenant, body, "/v2/merge-profile"), 400, field)
    barrier(client, tenant)
    assert ann_profiles(client, tenant) == [first, second]
    assert errors(client, tenant) == []


def test_an_unknown_top_level_field_is_a_400_problem(client: Client, tenant: Tenant) -> None:
    first, second = two_profiles(client, tenant)
    response = post(client, tenant, {**C1_KEEPS_C2, "priority": "high"}, "/v2/merge-profile")
    problem = assert_problem(response, 400, "root")
    assert "`priority`" in problem["errors"][0]["detail"]
    barrier(client, tenant)
    assert ann_profiles(client, tenant) == [first, second]


def test_malformed_json_is_a_400_problem_about_the_body(client: Client, tenant: Tenant) -> None:
    first, second = two_profiles(client, tenant)
    assert_problem(post(client, tenant, b'{"email": "ann@example.com"', "/v2/merge-profile"), 400, "body")
    barrier(client, tenant)
    assert ann_profiles(client, tenant) == [first, second]


def test_a_body_that_is_not_json_is_a_400_problem(client: Client, tenant: Tenant) -> None:
    first, second = two_profiles(client, tenant)
    response = client.post(
        "/v2/merge-profile",
        content=b"email=ann%40example.com",
        headers={**tenant.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 400, "body")
    barrier(client, tenant)
    assert ann_profiles(client, tenant) == [first, second]


# rate limit -------------------------------------------------------------------------------------


def test_a_second_merge_within_a_minute_is_a_429_and_is_not_queued(
    client: Client, make_tenant: Callable[..., Tenant]
) -> None:
    limited = make_tenant("limited", limits={"data": "unlimited", "push": "unlimited"})
    assert read(client, limited, "/v2/account")["limits"]["merge"] == "1/minute"
    first, second = two_profiles(client, limited)
    bea = third_profile(client, limited)
    job = start_merge(client, limited, C1_KEEPS_C2)
    refused = post(client, limited, new_form(customer("C1"), customer("C3")), "/v2/merge-profile")
    problem = assert_problem(refused, 429)
    assert "merge" in problem["detail"] and "1/minute" in problem["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert wait_job(client, limited, job["id"])["merged"] == [second]
    barrier(client, limited)
    assert profile(client, limited, bea)["id"] == bea
    assert profile(client, limited, first)["identities"] == [
        {"id": "C1", "type": "customer_id"},
        {"id": "C2", "type": "customer_id"},
        {"id": EMAIL, "type": "email"},
    ]
    assert errors(client, limited) == []


# unknown jobs and isolation ---------------------------------------------------------------------


def test_an_unknown_merge_job_is_a_404_problem(client: Client, tenant: Tenant) -> None:
    response = client.get(f"/v2/merge-profile/{uuid.uuid4()}", headers=tenant.headers)
    assert_problem(response, 404, "job_id")


def test_a_merge_job_of_another_account_is_a_404(client: Client, make_tenant: Callable[..., Tenant]) -> None:
    shop, other = make_tenant("shop"), make_tenant("other")
    two_profiles(client, shop)
    job = wait_job(client, shop, start_merge(client, shop, C1_KEEPS_C2)["id"])
    assert job["status"] == "completed"
    assert_problem(client.get(f"/v2/merge-profile/{job['id']}", headers=other.headers), 404, "job_id")


def test_a_push_request_is_not_a_merge_job(client: Client, tenant: Tenant) -> None:
    request_id = push(client, tenant, [order("o1", "C1", 10)])["request_id"]
    assert_problem(client.get(f"/v2/merge-profile/{request_id}", headers=tenant.headers), 404, "job_id")
