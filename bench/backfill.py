"""A backfill: 1,000,000 generated records pushed as fast as the server takes them, with the rate
limit lifted; the wall time until every record is applied, and the server's peak memory.

    python bench/backfill.py [--records 1000000] [--concurrency 8] [--no-docs]

The mix is a shop's history: contacts (30%), orders with two line items each (30%, by those
contacts), products (10%) and custom events (30%, by those contacts), 100 records a request, in
that proportion. An asyncio client pushes over HTTPS to ``patron serve`` (SQLite, its worker) on a
fresh data directory; the peak resident memory of the server and its worker process is sampled every
half second. Then the server stops, and the database's bytes per applied record are measured, and
again once everything prunable is pruned (``patron.retention`` with a retention of 0 days, as the
worker prunes, then its incremental vacuum). Prints JSON and rewrites the backfill section of
docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import ssl
import sys
import threading
import time
from dataclasses import replace
from itertools import cycle
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
from common import fresh, machine, queued, write_section
from push import RECORDS_PER_REQUEST, order

from conftest import Server, start_server
from patron.config import Retention, Settings
from patron.retention import Pruner
from patron.store import open_store

#: Request kinds in the proportions of the mix (3 contacts : 3 orders : 1 products : 3 events).
MIX = ["contact", "order", "product", "event", "contact", "order", "event", "contact", "order", "event"]


def contact(n: int) -> dict[str, Any]:
    return {
        "@type": "contact",
        "id": f"c-{n}",
        "email": f"shopper{n}@example.com",
        "firstname": "Ada",
        "lastname": "Byron",
        "customer_id": f"c-{n}",
        "marketing_optin": "EXPLICITLY_OPTEDIN",
        "country_id": "GB",
        "timestamp_acquired": "2026-01-05T09:00:00+00:00",
        "properties": {"tier": "gold", "source": "backfill"},
    }


def product(n: int) -> dict[str, Any]:
    return {
        "@type": "product",
        "id": f"sku-{n}",
        "title": f"Product {n}",
        "price": 49.0,
        "currency": "GBP",
        "url": f"https://shop.example/p/{n}",
        "image_url": f"https://shop.example/i/{n}.jpg",
        "is_active": True,
        "stores": ["uk"],
        "attributes": [{"type": "colour", "id": "red", "label": "Red"}],
    }


def event(n: int) -> dict[str, Any]:
    return {
        "@type": "custom_event",
        "id": f"e-{n}",
        "event_type": "wishlist_add",
        "identity_email": f"shopper{n}@example.com",
        "timestamp": "2026-11-20T10:15:00+00:00",
        "properties": {"product_id": f"sku-{n % 5000}", "list": "default"},
    }


def body(kind: str, request: int) -> bytes:
    """Request ``request``'s 100 records; contacts, orders and events of request k name the same
    customers, so that they join profiles."""
    first = (request // len(MIX)) * RECORDS_PER_REQUEST
    if kind == "order":
        records = [order(str(request), first + i) for i in range(RECORDS_PER_REQUEST)]
    else:
        make = {"contact": contact, "product": product, "event": event}[kind]
        records = [make(first + i) for i in range(RECORDS_PER_REQUEST)]
        if kind != "contact":  # every request's own products and events
            records = [{**r, "id": f"{r['id']}-{request}"} for r in records]
    return json.dumps(records).encode()


async def push_all(server: Server, key: str, requests: int, concurrency: int) -> None:
    context = ssl.create_default_context(cafile=server.ca)
    headers = {"X-Ometria-Auth": key, "Content-Type": "application/json"}
    numbers = iter(range(requests))
    kinds = cycle(MIX)
    async with httpx.AsyncClient(base_url=server.url, verify=context, timeout=120) as client:

        async def worker() -> None:
            for n in numbers:
                kind = next(kinds)
                answer = await client.post("/v2/push", content=body(kind, n), headers=headers)
                if answer.status_code != 202 or answer.json().get("rejected"):
                    raise SystemExit(f"push {n} ({kind}): {answer.status_code} {answer.text[:500]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


class PeakMemory:
    """The largest resident memory of the server and its children together, sampled."""

    def __init__(self, pid: int) -> None:
        self.root, self.peak, self.stop = psutil.Process(pid), 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                tree = [self.root, *self.root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass


def prune_everything(data_dir: Path) -> int:
    """Prune with a retention of 0 days, through the worker's own code, give the free pages back and
    checkpoint: the database file's size then."""
    store = open_store(replace(Settings(), data_dir=data_dir, database_url=None))
    store.start()
    try:
        pruner = Pruner(store, Retention(applied_days=0, errors_days=0, events_days=0), pause=0)
        while pruner.prune().more:
            pass
        store.purge()
    finally:
        store.close()
    return (data_dir / "patron.db").stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    work, data_dir, tenant = fresh("backfill", "--push", "unlimited", "--queue", "100000000")
    server = start_server(data_dir, "--log-level", "WARNING")
    requests = args.records // RECORDS_PER_REQUEST
    memory = PeakMemory(server.process.pid)
    try:
        started = time.monotonic()
        asyncio.run(push_all(server, tenant.key, requests, args.concurrency))
        acknowledged = time.monotonic() - started
        while queued(data_dir):
            time.sleep(0.2)
        applied = time.monotonic() - started
        memory.stop.set()
        size = sum(f.stat().st_size for f in data_dir.glob("patron.db*"))
        server.stop()  # its checkpoint empties the WAL into the database
        stored = (data_dir / "patron.db").stat().st_size
        pruned = prune_everything(data_dir)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "records": requests * RECORDS_PER_REQUEST,
        "acknowledged_s": acknowledged,
        "applied_s": applied,
        "records_per_s_applied": requests * RECORDS_PER_REQUEST / applied,
        "peak_rss_mb": memory.peak / 2**20,
        "database_mb": size / 2**20,
        "bytes_per_record": stored / (requests * RECORDS_PER_REQUEST),
        "bytes_per_record_pruned": pruned / (requests * RECORDS_PER_REQUEST),
    }
    print(json.dumps(result, indent=2))
    if not args.no_docs:
        rows = [
            (
                f"backfill of {result['records']:,} records: wall time until all are applied",
                f"{applied:,.0f} s ({result['records_per_s_applied']:,.0f} records/s;"
                f" all acknowledged after {acknowledged:,.0f} s)",
                "",
                "",
                "< 180 s",
            ),
            (
                "peak resident memory of the server and its worker during the backfill",
                f"{result['peak_rss_mb']:,.0f} MB (database {result['database_mb']:,.0f} MB)",
                "",
                "",
                "< 500 MB",
            ),
            (
                "database per applied record: after the backfill, and once everything prunable is pruned",
                f"{result['bytes_per_record']:,.0f} B, pruned {result['bytes_per_record_pruned']:,.0f} B",
                "",
                "",
                "< 1 KB pruned",
            ),
        ]
        preamble = (
            f"Measured by `python bench/backfill.py --records {args.records}` on {time.strftime('%Y-%m-%d')},"
            f" {machine()}: contacts, orders with line items, products and custom events (3:3:1:3), 100"
            f" a request, {args.concurrency} at a time over HTTPS on loopback, the client on the same"
            " 2 cores; the push rate limit lifted."
        )
        write_section("backfill", preamble, rows)


if __name__ == "__main__":
    main()
