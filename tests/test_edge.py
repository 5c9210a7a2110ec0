"""The typed edge: handlers are given the app's services as typed dependencies (no untyped ``State``
bag), everything that queues goes through one ``Submitter`` (a full backlog refuses a push, a merge
or an anonymisation, never a beacon or what people do through an email's links), and the benchmark's
no-op push exists only in a server started for the benchmark."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar import Litestar, get
from litestar.routes import HTTPRoute
from litestar.testing import TestClient
from sqlalchemy import select

from conftest import Tenant
from patron import accounts
from patron.api.edge import EDGE, Edge, Injected, edge_of
from patron.app import create_app
from patron.config import Settings, Site
from patron.email.sandbox import Renderer
from patron.ingest.submit import Submitter
from patron.store import Store
from patron.store.schema import import_batches
from patron.tracking import wire

Client = TestClient[Any]
PROBLEM = "application/problem+json"
ROOT = Path(__file__).parent.parent


def handlers(app: Litestar) -> Iterator[Any]:
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler, _ in route.route_handler_map.values():
                yield handler


# services as typed dependencies -------------------------------------------------------------------


def test_no_handler_takes_the_untyped_state(settings: Settings, store: Store) -> None:
    app = create_app(replace(settings, run_worker=False), store)
    takers = [h.handler_name for h in handlers(app) if "state" in h.parsed_fn_signature.parameters]
    assert takers == []


def test_handlers_given_a_service_declare_it_as_a_dependency(settings: Settings, store: Store) -> None:
    """A parameter named after a service is always injected (never read from the query string)."""
    app = create_app(replace(settings, run_worker=False), store)
    services = set(edge_of(app).dependencies())
    for handler in handlers(app):
        for name, parameter in handler.parsed_fn_signature.parameters.items():
            if name in services:
                assert parameter.is_di_field, (handler.handler_name, name)


def test_the_app_keeps_one_typed_edge_and_hands_its_services_out(client: Client) -> None:
    edge = edge_of(client.app)
    assert isinstance(edge, Edge)
    assert set(client.app.state.dict()) <= {EDGE, "openapi_document"}

    @get("/_test/services", sync_to_thread=False)
    def services(
        store: Injected[Store],
        submit: Injected[Submitter],
        renderer: Injected[Renderer],
        site: Injected[Site],
    ) -> dict[str, bool]:
        return {
            "store": store is edge.store,
            "submit": submit is edge.submit and submit.store is edge.store,
            "renderer": renderer is edge.renderer,
            "site": site == edge.settings.site,
        }

    client.app.register(services)
    assert client.get("/_test/services").json() == {
        "store": True,
        "submit": True,
        "renderer": True,
        "site": True,
    }


# the benchmark's no-op ----------------------------------------------------------------------------


def test_the_benchmark_no_op_is_not_served_unless_asked_for(client: Client, tenant: Tenant) -> None:
    response = client.post("/v2/_bench/noop", json=[], headers=tenant.headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


def test_a_server_started_for_the_benchmark_serves_the_no_op(
    settings: Settings, store: Store, tenant: Tenant
) -> None:
    with TestClient(create_app(replace(settings, bench_noop=True, run_worker=False), store)) as bench:
        response = bench.post("/v2/_bench/noop", json=[{"@type": "order", "id": "a"}], headers=tenant.headers)
        assert (response.status_code, response.json()) == (202, {"status": "OK"})
        assert bench.post("/v2/_bench/noop", json=[]).status_code == 403  # behind the key like any push
        assert "/v2/_bench/noop" not in bench.get("/v2/swagger.json").json()["paths"]
    assert "--bench-noop" in (ROOT / "bench" / "push.py").read_text()


# one submitter ------------------------------------------------------------------------------------


@pytest.fixture
def idle(settings: Settings, store: Store) -> Iterator[Client]:
    """The app without a worker: what is queued stays queued."""
    with TestClient(create_app(replace(settings, run_worker=False), store)) as client:
        yield client


@pytest.fixture
def full(store: Store, tenant: Tenant, idle: Client) -> Tenant:
    """``tenant``, its queue limit (2 records) reached by one push."""
    store.write_blocking(lambda conn: accounts.set_limits(conn, tenant.hash, {}, queue_limit=2))
    filled = idle.post(
        "/v2/push",
        json=[{"@type": "order", "id": "a"}, {"@type": "order", "id": "b"}],
        headers=tenant.headers,
    )
    assert filled.status_code == 202 and filled.headers["x-queuesize-remaining"] == "0"
    return tenant


def queued(store: Store, tenant: Tenant) -> list[str]:
    """The record types of the account's import batches, in arrival order."""
    account = store.read_blocking(lambda conn: accounts.get_account(conn, tenant.hash))
    t = import_batches
    rows = store.read_blocking(
        lambda conn: conn.execute(
            select(t.c.record_type).where(t.c.account_id == account.id).order_by(t.c.id)
        ).all()
    )
    return [row.record_type for row in rows]


def refused(response: Any, detail: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert (body["title"], body["detail"]) == ("Too Many Requests", detail)
    assert "errors" not in body


def test_a_full_backlog_refuses_a_push_with_the_queue_s_size(
    idle: Client, full: Tenant, store: Store
) -> None:
    response = idle.post("/v2/push", json=[{"@type": "order", "id": "c"}], headers=full.headers)
    refused(
        response,
        "the account has 2 records queued and may queue 2; this push does not fit, and nothing was stored",
    )
    assert (response.headers["x-queuesize-limit"], response.headers["x-queuesize-remaining"]) == ("2", "0")
    one = idle.post("/v2/orders/c", json={}, headers=full.headers)
    refused(
        one,
        "the account has 2 records queued and may queue 2; this push does not fit, and nothing was stored",
    )
    assert queued(store, full) == ["order"]


def test_a_full_backlog_refuses_a_merge_and_an_anonymisation(
    idle: Client, full: Tenant, store: Store
) -> None:
    merge = idle.post("/v2/merge-profile", json={"email": "ann@example.com"}, headers=full.headers)
    refused(merge, "the account has 2 records queued and may queue 2; nothing was stored")
    assert "x-queuesize-limit" not in merge.headers
    deletion = idle.post(
        "/v2/data-deletion-requests", json={"email": "ann@example.com"}, headers=full.headers
    )
    refused(deletion, "the account has 2 records queued and may queue 2; nothing was stored")
    assert idle.get("/v2/data-deletion-requests", headers=full.headers).json() == []
    assert queued(store, full) == ["order"]


def test_a_full_backlog_never_refuses_a_beacon_nor_an_email_s_links(
    idle: Client, full: Tenant, store: Store
) -> None:
    sender = {"email": "news@example.com"}
    message = {"from": sender, "to": {"email": "ann@example.com"}, "subject": "s", "sandbox": True}
    sent = idle.post(
        "/v2/transactional-email/send",
        json={**message, "html": '<a href="https://shop.example.com/sale">Sale</a>'},
        headers=full.headers,
    )
    assert sent.status_code == 202, sent.text
    kept = idle.get(f"/v2/transactional-email/{sent.json()['message_id']}", headers=full.headers).json()
    [click] = re.findall(r'href="([^"]+)"', kept["html"])

    clicked = idle.get(urlsplit(click).path, follow_redirects=False)
    assert (clicked.status_code, clicked.headers["location"]) == (302, "https://shop.example.com/sale")
    unsubscribed = idle.post(urlsplit(kept["unsubscribe_url"]).path, content=b"List-Unsubscribe=One-Click")
    assert unsubscribed.status_code == 200 and "You are unsubscribed" in unsubscribed.text
    event = wire.encode({"cid": "c" * 16, "sid": "s1", "type": "pageview", "d": {"type": "home"}})
    assert idle.get(f"/track/v3/{full.hash}/event.gif", params={"data": event}).status_code == 200

    assert queued(store, full) == ["order", "email_click", "unsubscribe", "track"]


def test_a_link_refused_before_it_is_queued_queues_nothing(idle: Client, full: Tenant, store: Store) -> None:
    page = idle.get("/c/not-a-link", follow_redirects=False)
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    assert "location" not in page.headers
    assert idle.post("/u/not-a-link").status_code == 400
    assert queued(store, full) == ["order"]


# the document -------------------------------------------------------------------------------------


def test_no_choice_of_the_document_is_one_that_every_value_makes_ambiguous(client: Client) -> None:
    """A push error's ``record`` is any JSON value or null: ``anyOf``, as ``oneOf`` would refuse the
    null that every lenient reading's row holds (it matches both choices)."""
    document = client.get("/v2/swagger.json").json()
    record = document["components"]["schemas"]["PushError"]["properties"]["record"]
    assert record == {"anyOf": [{}, {"type": "null"}]}

    def choices(node: Any) -> Iterator[list[Any]]:
        if isinstance(node, dict):
            if isinstance(node.get("oneOf"), list):
                yield node["oneOf"]
            for value in node.values():
                yield from choices(value)
        elif isinstance(node, list):
            for value in node:
                yield from choices(value)

    assert [found for found in choices(document) if {} in found] == []
