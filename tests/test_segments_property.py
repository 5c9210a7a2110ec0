"""Random histories of pushes, merges and tag events (those of ``test_profiles_property``) keep every
segment's members exactly what a full evaluation finds: segments made before the history, kept
current by the worker's round after round, hold the same profiles as the same rules built afresh
afterwards, their sizes say so, and their changes feed replays to their members."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Tenant, eventually, wait_applied
from support.app import App, Client, app_fixtures
from support.http import post, read
from test_profiles_property import histories, send

shared, client, make_tenant = app_fixtures()
EXAMPLES = settings(max_examples=12, deadline=None, derandomize=True, database=None)
RULES: list[dict[str, Any]] = [
    {"field": "stats.orders", "op": "gte", "value": 1},
    {"all": [{"consent": "email", "is": "subscribed"}, {"not": {"list": "L1"}}]},
    {
        "any": [
            {"list": "L2"},
            {"field": "stats.visits", "op": "gte", "value": 1},
            {"field": "firstname", "op": "eq", "value": "Ann"},
        ]
    },
    {"orders": "revenue", "op": "gt", "value": 15, "since": "-3650d"},
]


def made(client: Client, tenant: Tenant, rules: dict[str, Any]) -> str:
    response = post(client, tenant, {"name": "p", "rules": rules}, "/v2/segments")
    assert response.status_code == 201, response.text
    segment_id: str = response.json()["id"]
    eventually(lambda: read(client, tenant, f"/v2/segments/{segment_id}")["status"] == "ready", "built")
    return segment_id


def held(client: Client, tenant: Tenant, segment_id: str) -> set[str]:
    return set(read(client, tenant, f"/v2/segments/{segment_id}/profiles?ids_only=true&limit=250"))


def replayed(client: Client, tenant: Tenant, segment_id: str) -> set[str]:
    members: set[str] = set()
    for change in read(client, tenant, f"/v2/segments/{segment_id}/changes?limit=250"):
        if change["type"] == "segment_enter":
            assert change["profile_id"] not in members, change
            members.add(change["profile_id"])
        else:
            members.remove(change["profile_id"])
    return members


@EXAMPLES
@given(history=histories, which=st.sampled_from(range(len(RULES))))
def test_segments_kept_current_hold_what_a_full_evaluation_finds(
    shared: App, history: list[tuple[dict[str, Any], bool]], which: int
) -> None:
    client, tenant = shared.client, shared.tenant("segments")
    kept = made(client, tenant, RULES[which])
    for step, wait in [*history, ({"@type": "contact", "id": "last", "email": "last@example.com"}, True)]:
        request_id = send(client, tenant, step)
        if wait and request_id is not None:
            wait_applied(client, tenant, request_id)
    afresh = made(client, tenant, RULES[which])
    expected = held(client, tenant, afresh)
    assert held(client, tenant, kept) == expected
    assert read(client, tenant, f"/v2/segments/{kept}")["size"] == len(expected)
    assert replayed(client, tenant, kept) == expected
