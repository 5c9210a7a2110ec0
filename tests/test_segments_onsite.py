"""Segments over what the website tag saw: product views and abandoned sessions, kept current as
beacons arrive and idle sessions end (their own app: sessions end after a second idle)."""

from __future__ import annotations

from typing import Any

from conftest import Tenant, eventually, push
from patron.tracking import wire
from support.app import Client, app_fixtures
from support.http import post, read

shared, client, make_tenant = app_fixtures(session_idle=1.0, track_per_visitor="60/minute")


class Browser:
    """One visitor, sending the tag's events over HTTP."""

    def __init__(self, client: Client, tenant: Tenant, name: str) -> None:
        self.client, self.tenant = client, tenant
        self.common = {"cid": f"visitor-{name}", "sid": f"session-{name}", "src": "|||||"}

    def send(self, kind: str, d: dict[str, Any]) -> None:
        event = {**self.common, "type": kind, "channel": "system", "d": d}
        answer = self.client.get(
            f"/track/v3/{self.tenant.hash}/event.gif", params={"data": wire.encode(event), "rnd": "a1b2c3"}
        )
        assert answer.status_code == 200


def created(client: Client, tenant: Tenant, rules: dict[str, Any]) -> str:
    response = post(client, tenant, {"name": "web", "rules": rules}, "/v2/segments")
    assert response.status_code == 201, response.text
    segment_id: str = response.json()["id"]
    eventually(lambda: read(client, tenant, f"/v2/segments/{segment_id}")["status"] == "ready", "built")
    return segment_id


def test_views_and_abandoned_sessions_move_profiles_in(client: Client, tenant: Tenant) -> None:
    push(
        client,
        tenant,
        [
            {"@type": "contact", "@collection": "default", "id": name, "email": f"{name}@example.com"}
            for name in ("ann", "bob", "cat")
        ],
    )
    rules = {
        "viewed p-1 twice": {"viewed": "p-1", "op": "gte", "value": 2},
        "viewed any": {"viewed": "*", "since": "-1d"},
        "basket": {"abandoned": "basket", "since": "-1d"},
        "browse": {"abandoned": "browse"},
    }
    segments = {name: created(client, tenant, rule) for name, rule in rules.items()}
    ann, bob = Browser(client, tenant, "ann"), Browser(client, tenant, "bob")
    ann.send("identify", {"uiid": "ann@example.com"})
    ann.send("viewproduct", {"pid": "p-1"})
    ann.send("pageview", {"type": "product", "pid": "p-1"})
    ann.send("addtobasket", {"pid": "p-1", "q": "1"})
    ann.send(
        "setbasket", {"id": "b-1", "total": "9.00", "cur": "GBP", "size": 1, "lis": [{"pid": "p-1", "q": 1}]}
    )
    bob.send("identify", {"uiid": "bob@example.com"})
    bob.send("viewproduct", {"pid": "p-2"})
    people = {doc["id"]: doc["email"].split("@")[0] for doc in read(client, tenant, "/v2/profiles?limit=50")}

    def held(name: str) -> set[str]:
        ids = read(client, tenant, f"/v2/segments/{segments[name]}/profiles?ids_only=true&limit=50")
        return {people[i] for i in ids}

    expected = {
        "viewed p-1 twice": {"ann"},
        "viewed any": {"ann", "bob"},
        "basket": {"ann"},
        "browse": {"bob"},
    }
    eventually(lambda: all(held(name) == who for name, who in expected.items()), "the sessions ended")
