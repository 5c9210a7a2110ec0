"""Records/s the worker applies (entities, identity resolution and profiles), without HTTP.

    python bench/apply.py [--batches 1500] [--customers repeat|distinct] [--webhooks 0] [--segments 0]

Queues ``--batches`` requests of 100 orders (``bench/push.py``'s realistic order) on a fresh SQLite
store through the Python API, then times ``apply_round`` until the queue is empty. ``repeat`` gives
every request the same 100 customers (so each profile ends with ``batches`` orders: the refresh of a
profile reads all its orders); ``distinct`` gives every order a new customer (a new profile and two
identities per order). Then the ceiling: the same order rows, as the worker left them, inserted with
raw ``sqlite3`` ``executemany`` into a fresh store (same schema and indexes, WAL, ``synchronous=FULL``),
500 to a transaction as a round commits them: storage alone, with no merging, linking or profiles;
and the rows the rounds wrote beside them for segments and webhooks (members, entries and exits,
events), inserted the same way in as many transactions as there were rounds: the floor of their cost.
``--webhooks N`` gives the account N endpoints subscribed to every event type, or to those
``--subscribe`` lists (the worker writes their events; none is delivered); ``--segments N`` gives it
N live segments (:data:`SEGMENTS`, in turn), which the worker keeps current every round. Prints JSON
and rewrites the apply section of docs/performance.md (without ``--webhooks`` or ``--segments``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec
from sqlalchemy import Connection, func, select

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, write_section
from push import RECORDS_PER_REQUEST, order

from patron import accounts, memory
from patron.config import Settings
from patron.ingest.push import push
from patron.ingest.submit import Submitter
from patron.ingest.worker import ROUND_RECORDS, apply_round
from patron.profiles.segments import members
from patron.profiles.segments import rules as r
from patron.profiles.segments.members import ENTER, EXIT
from patron.runtime import queue_kinds
from patron.segments import queue_build
from patron.store import Store, open_store
from patron.store.schema import segment_changes, webhook_outbox
from patron.webhooks import endpoints
from patron.webhooks.outbox import EVENT_TYPES
from patron.webhooks.requests import NewEndpoint

#: Segments of the kinds a shop keeps: stats, consent, country, dates relative and not, order windows,
#: products bought, lists, custom events, on-site behaviour, combinations.
SEGMENTS: list[dict[str, object]] = [
    {"field": "stats.orders", "op": "gte", "value": 2},
    {"field": "stats.revenue", "op": "gt", "value": 500},
    {"field": "stats.aov", "op": "lt", "value": 40},
    {"consent": "email", "is": "subscribed"},
    {"consent": "sms", "is": "unknown"},
    {"field": "country_id", "op": "in", "value": ["GB", "IE"]},
    {"date": "dates.last_purchase", "before": "-90d"},
    {"date": "dates.first_purchase", "after": "-30d"},
    {"orders": "count", "op": "gte", "value": 3, "since": "-365d"},
    {"orders": "revenue", "op": "gte", "value": 100, "since": "-30d"},
    {"orders": "count", "product": "sku-100"},
    {"list": "vip"},
    {"not": {"list": "vip"}},
    {"event": "wishlist_add", "since": "-30d"},
    {"viewed": "*", "since": "-7d"},
    {"abandoned": "basket", "since": "-7d"},
    {"field": "properties.tier", "op": "eq", "value": "gold"},
    {"all": [{"field": "stats.orders", "op": "eq", "value": 1}, {"consent": "email", "is": "subscribed"}]},
    {
        "any": [
            {"field": "country_id", "op": "eq", "value": "FR"},
            {"field": "stats.revenue", "op": "gte", "value": 1000},
        ]
    },
    {"all": [{"date": "dates.last_purchase", "after": "-7d"}, {"not": {"field": "gender", "op": "exists"}}]},
]


@dataclass(frozen=True)
class Load:
    """What the account keeps beside its queue: ``webhooks`` endpoints subscribed to ``subscribe``
    (``all`` or a comma-separated list of event types), and ``segments`` live segments."""

    webhooks: int = 0
    segments: int = 0
    subscribe: str = "all"


def prepared(directory: Path, customers: str, batches: int, load: Load) -> Store:
    """A started store in ``directory`` whose account has the load's endpoints and segments and
    ``batches`` requests of 100 orders queued."""
    store = open_store(replace(Settings(), data_dir=directory, database_url=None))
    store.start()
    account, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "bench", "staging"))
    account = msgspec.structs.replace(account, queue_limit=10**9)
    types = list(EVENT_TYPES) if load.subscribe == "all" else load.subscribe.split(",")
    for n in range(load.webhooks):
        body = NewEndpoint(url=f"https://hooks{n}.example.com/", event_types=types)
        store.write_blocking(
            lambda conn, b=body: endpoints.create(conn, account.id, b, b.url, accounts.now())  # type: ignore[misc]
        )
    for n in range(load.segments):
        rule = r.parse(SEGMENTS[n % len(SEGMENTS)])

        def segment(conn, rule=rule, n=n):  # type: ignore[no-untyped-def]
            at = accounts.now()
            segment_id = members.create(conn, account.id, f"s{n}", rule, at)
            queue_build(conn, account.id, segment_id, 1, at)

        store.write_blocking(segment)
    submit = Submitter(store, wake=lambda: None)  # the rounds of :func:`applied` are the worker

    async def fill() -> None:
        for n in range(batches):
            first = n * RECORDS_PER_REQUEST if customers == "distinct" else 0
            records = [order(str(n), first + i) for i in range(RECORDS_PER_REQUEST)]
            await push(submit, account, json.dumps(records).encode(), accounts.now())

    asyncio.run(fill())
    return store


def applied(stores: list[Store], round_records: int = ROUND_RECORDS) -> list[dict[str, float]]:
    """Apply each store's queue until it is empty, a round of each in turn: a change of the machine's
    speed falls on all of them alike. For each store: the seconds spent in its own rounds (wall, and
    the process's CPU time: every thread's), and how many rounds applied something. The stores are
    closed if it fails."""
    kinds = queue_kinds()
    memory.settle()  # as `patron worker` does once started
    timed = [{"seconds": 0.0, "cpu_seconds": 0.0, "rounds": 0} for _ in stores]
    busy = list(range(len(stores)))
    try:
        while busy:
            for n in list(busy):
                started, cpu = time.perf_counter(), time.process_time()
                more = apply_round(stores[n], kinds, round_records)
                timed[n]["seconds"] += time.perf_counter() - started
                timed[n]["cpu_seconds"] += time.process_time() - cpu
                if more:
                    timed[n]["rounds"] += 1
                else:
                    busy.remove(n)
    except BaseException:
        for store in stores:
            store.close()
        raise
    return timed


def result(directory: Path, store: Store, records: int, timed: dict[str, float]) -> dict[str, float]:
    """A store's figures once its queue is applied (and the store closed): the rate, what the rounds
    wrote beside the records, and the raw ceilings of :func:`raw_inserts`."""
    written = store.read_blocking(_written)
    store.close()
    return {
        "records": records,
        **timed,
        "records_per_s": records / timed["seconds"],
        "records_per_cpu_s": records / timed["cpu_seconds"],
        **written,
        **raw_inserts(directory, int(timed["rounds"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=1500)
    parser.add_argument("--customers", choices=["repeat", "distinct"], default="repeat")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument(
        "--webhooks", type=int, default=0, help="endpoints subscribed to every event type (none delivered)"
    )
    parser.add_argument("--segments", type=int, default=0, help="live segments kept current")
    parser.add_argument(
        "--subscribe",
        default="all",
        help="the event types the endpoints take: all, or a comma-separated list",
    )
    parser.add_argument("--round", type=int, default=ROUND_RECORDS, help="records a round takes")
    args = parser.parse_args()
    load = Load(args.webhooks, args.segments, args.subscribe)
    records = args.batches * RECORDS_PER_REQUEST
    with tempfile.TemporaryDirectory() as directory:
        store = prepared(Path(directory), args.customers, args.batches, load)
        [timed] = applied([store], args.round)
        found = {
            "customers": args.customers,
            "webhooks": args.webhooks,
            "segments": args.segments,
            "subscribe": args.subscribe,
            **result(Path(directory), store, records, timed),
        }
    print(json.dumps(found, indent=2))
    if not args.no_docs and not args.webhooks and not args.segments:
        ratio = found["records_per_s"] / found["raw_records_per_s"]
        row = (
            f"records/s applied by the worker (`{args.customers}` customers: entities, identities, profiles)",
            f"{found['records_per_s']:,.0f} ({records:,} orders in {found['seconds']:.1f} s)",
            "raw `sqlite3` `executemany` of the same order rows, 500 a transaction:"
            f" {found['raw_records_per_s']:,.0f}",
            f"{ratio:.2f}",
            "≥ 10,000",
        )
        preamble = (
            f"Measured by `python bench/apply.py --batches {args.batches} --customers {args.customers}` on"
            f" {time.strftime('%Y-%m-%d')}, {machine()}: the worker alone, no HTTP, on SQLite."
        )
        write_section(f"apply-{args.customers}", preamble, [row])


def _written(conn: Connection) -> dict[str, int]:
    """What the rounds wrote beside the records: segment entries and exits, and webhook events (and the
    outbox's rows holding them)."""
    c = segment_changes.c
    changes = dict(conn.execute(select(c.event, func.count()).group_by(c.event)).all())
    o = webhook_outbox.c
    rows, events = conn.execute(select(func.count(), func.coalesce(func.sum(o.events), 0))).one()
    return {
        "segment_entries": changes.get(ENTER, 0),
        "segment_exits": changes.get(EXIT, 0),
        "webhook_events": int(events),
        "webhook_rows": int(rows),
    }


#: What a round writes beside the records for segments and webhooks, inserted again by
#: :func:`raw_inserts` for the floor of their cost.
BESIDE = ("segment_members", "segment_changes", "webhook_outbox")


def raw_inserts(directory: Path, rounds: int) -> dict[str, float]:
    """The orders the worker stored, inserted again with the sqlite3 module alone, 500 to a
    transaction; and the rows it wrote beside them for segments and webhooks (:data:`BESIDE`), in
    ``rounds`` transactions as the rounds wrote them: what those rows cost with no Python between."""
    source = sqlite3.connect(directory / "patron.db")
    tables = {table: _rows(source, table) for table in ("orders", *BESIDE)}
    source.close()
    fresh = directory / "raw"
    store = open_store(replace(Settings(), data_dir=fresh, database_url=None))
    store.start()  # migrated: the same tables and indexes
    store.close()
    target = sqlite3.connect(fresh / "patron.db", isolation_level=None)
    target.execute("PRAGMA journal_mode=WAL")
    target.execute("PRAGMA synchronous=FULL")
    target.execute("DELETE FROM orders")
    statement, rows = tables["orders"]
    started = time.perf_counter()
    for start in range(0, len(rows), 500):
        target.execute("BEGIN")
        target.executemany(statement, rows[start : start + 500])
        target.execute("COMMIT")
    seconds = time.perf_counter() - started
    beside = [tables[table] for table in BESIDE]
    started = time.perf_counter()
    for n in range(rounds):
        target.execute("BEGIN")
        for statement, rows in beside:
            share = -(-len(rows) // rounds)
            target.executemany(statement, rows[n * share : (n + 1) * share])
        target.execute("COMMIT")
    beside_seconds = time.perf_counter() - started
    target.close()
    return {
        "raw_rows": len(tables["orders"][1]),
        "raw_seconds": seconds,
        "raw_records_per_s": len(tables["orders"][1]) / seconds,
        "raw_beside_rows": sum(len(rows) for _, rows in beside),
        "raw_beside_seconds": beside_seconds,
    }


def _rows(db: sqlite3.Connection, table: str) -> tuple[str, list[tuple[object, ...]]]:
    """The insert of a table's rows (all columns but the id), and its rows in order."""
    names = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
    columns = [name for name in names if name != "id"]
    # in the order written: by row id, or (a table keyed without one) by time and key
    order = "id" if "id" in names else "created_at, " + ", ".join(columns[:-1])
    rows = db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}").fetchall()  # noqa: S608
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows  # noqa: S608


if __name__ == "__main__":
    main()
