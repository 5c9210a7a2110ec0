"""The worker's rounds read an account's customer data through indexes narrower than the account.

A round touches a few hundred profiles of an account that may hold millions: each statement it runs
must find their rows by profile (or key), never by reading every row the account holds. On SQLite,
``EXPLAIN QUERY PLAN`` of each statement a round ran says how it reads; PostgreSQL chooses its plans
from the statistics of the data, so this module is about SQLite alone. An anonymisation is among the
rounds: its sweeps of anyone's free text read windows of ids by the primary key, never the account's
rows through an index of the account.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import Connection, Engine, event, func, select

from patron import accounts, gdpr, segments
from patron.config import Settings
from patron.ingest.push import push
from patron.ingest.queue import enqueue_operation
from patron.ingest.submit import Submitter
from patron.ingest.worker import apply_round
from patron.profiles.operations import MERGE
from patron.profiles.requests import MergeRequest
from patron.profiles.segments import members
from patron.profiles.segments import rules as r
from patron.runtime import queue_kinds
from patron.segments import queue_build
from patron.store import Store, open_store
from patron.store.schema import deletion_requests, list_members
from patron.webhooks import endpoints
from patron.webhooks.outbox import EVENT_TYPES
from patron.webhooks.requests import NewEndpoint

#: An account's settings and its slots of queued records' counts, few and read whole: a round may
#: read them by the account alone.
FEW_TABLES = {"accounts", "segments", "webhook_endpoints", "lists", "queue_counts"}

#: The highest number given to an entity of the account: one entry of the index at its end.
LAST_NUMBER = re.compile(r"^SELECT max\((\w+)\.seq\) AS max_1\s+FROM \1\s+WHERE \1\.account_id = \?$")

#: A rule of each kind, so that the round evaluates every kind of condition.
RULES: list[dict[str, Any]] = [
    {"field": "stats.orders", "op": "gte", "value": 2},
    {"consent": "email", "is": "subscribed"},
    {"date": "dates.last_purchase", "before": "-90d"},
    {"orders": "count", "op": "gte", "value": 2, "since": "-365d"},
    {"orders": "count", "product": "P1"},
    {"orders": "count", "attribute": {"type": "brand", "id": "acme"}},
    {"list": "vip"},
    {"not": {"list": "vip"}},
    {"event": "wishlist_add", "since": "-30d"},
    {"viewed": "*", "since": "-7d"},
    {"abandoned": "basket", "since": "-7d"},
]


def records(first: int, count: int) -> list[list[dict[str, Any]]]:
    """A product with an attribute, contacts joining a list, their orders and custom events: a request
    of each type."""
    at = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    brand = {"type": "brand", "id": "acme" if first else "other"}
    product = {"@type": "product", "id": "P1", "title": "P1", "price": 10, "attributes": [brand]}
    emails = {n: f"c{n}@example.com" for n in range(first, first + count)}
    contacts = [
        {
            "@type": "contact",
            "@collection": "default",
            "id": f"c{n}",
            "email": email,
            "@add_to_lists": ["vip"],
        }
        for n, email in emails.items()
    ]
    line = {"product_id": "P1", "quantity": 1, "unit_price": 10}
    orders = [
        {
            "@type": "order",
            "id": f"o{first}-{n}",
            "timestamp": at,
            "currency": "GBP",
            "grand_total": 10,
            "customer": {"email": email},
            "lineitems": [line],
        }
        for n, email in emails.items()
    ]
    events = [
        {
            "@type": "custom_event",
            "id": f"e{first}-{n}",
            "event_type": "wishlist_add",
            "timestamp": at,
            "identity_email": email,
            "properties": {},
        }
        for n, email in emails.items()
    ]
    return [[product], contacts, orders, events]


@contextmanager
def statements() -> Iterator[list[tuple[str, Any]]]:
    """The statements every engine runs meanwhile (reads and writes alike), with their parameters."""
    ran: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if not many and statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")):
            ran.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield ran
    finally:
        event.remove(Engine, "before_cursor_execute", record)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A SQLite store, whichever store the other modules' tests run on."""
    store = open_store(replace(Settings(), data_dir=tmp_path / "data", database_url=None, redis_url=None))
    store.start()
    yield store
    store.close()


def test_a_round_reads_no_table_by_the_account_alone(store: Store) -> None:
    """Returning and new customers, list entries, orders, events, a product's attribute changing, a
    merge, a segment's export to a list and a check of the relative segments, with segments of every
    kind and endpoints taking every event: no statement of the rounds scans a table or reads one by
    the account alone but the account's settings."""
    account, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "shop", "staging"))
    account = msgspec.structs.replace(account, queue_limit=10**6)

    def setup(conn: Connection) -> list[int]:
        at = accounts.now()
        body = NewEndpoint(url="https://hooks.example.com/", event_types=list(EVENT_TYPES))
        endpoints.create(conn, account.id, body, body.url, at)
        made = [members.create(conn, account.id, f"s{n}", r.parse(rule), at) for n, rule in enumerate(RULES)]
        for segment_id in made:
            queue_build(conn, account.id, segment_id, 1, at)
        return made

    segment_ids = store.write_blocking(setup)
    submit = Submitter(store, wake=lambda: None)
    kinds = queue_kinds()

    def pushed(requests: list[list[dict[str, Any]]]) -> None:
        for batch in requests:
            asyncio.run(push(submit, account, json.dumps(batch).encode(), accounts.now()))

    pushed(records(0, 30))
    while apply_round(store, kinds):
        pass
    pushed(records(20, 30))  # ten returning customers, twenty new; the product gains its attribute
    merge = msgspec.json.decode(
        json.dumps(
            {
                "survivor": {"type": "email_address", "value": "c0@example.com"},
                "customers_to_merge": [{"type": "email_address", "value": "c1@example.com"}],
            }
        ),
        type=MergeRequest,
    )
    store.write_blocking(
        lambda conn: enqueue_operation(
            conn, account.id, None, str(uuid.uuid4()), MERGE, merge, accounts.now()
        )
    )

    def export_and_check(conn: Connection) -> int:  # a segment exported to a list; relative ones checked
        vip = segment_ids[RULES.index({"list": "vip"})]
        segments.export(conn, account.id, vip, "exported", accounts.now())
        return segments.recheck(conn, accounts.now() + timedelta(days=1))

    assert store.write_blocking(export_and_check) > 0
    anonymise = gdpr.DeletionRequest(email="c2@example.com")
    store.write_blocking(
        lambda conn: gdpr.request(conn, account.id, None, str(uuid.uuid4()), anonymise, accounts.now())
    )
    with statements() as ran:
        while apply_round(store, kinds):
            pass
    assert any("segment_members" in s for s, _ in ran) and any("list_members" in s for s, _ in ran)
    exported = store.read_blocking(
        lambda conn: conn.execute(
            select(func.count()).where(
                list_members.c.list_id == "exported", list_members.c.account_id == account.id
            )
        ).scalar_one()
    )
    assert exported > 0
    status = select(deletion_requests.c.status).where(deletion_requests.c.account_id == account.id)
    assert store.read_blocking(lambda conn: conn.execute(status).scalar_one()) == "completed"

    by_account = re.compile(r"^SEARCH (\w+) USING (?:COVERING )?INDEX \w+ \(account_id=\?\)$")
    readings = []
    for statement, parameters in {s: p for s, p in ran if not LAST_NUMBER.match(s)}.items():
        plan = store.read_blocking(
            lambda conn, s=statement, p=parameters: conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {s}", p).all()
        )
        for *_, step in plan:
            scanned = re.match(r"^SCAN (\w+)$", step)
            alone = by_account.match(step)
            if scanned or (alone and alone.group(1) not in FEW_TABLES):
                readings.append((step, statement))
    assert readings == [], "\n".join(f"{step}\n    {statement}" for step, statement in readings)
