"""How long the integration check takes over a large account, on SQLite and on PostgreSQL, and what it
costs the writes that run beside it.

    python bench/report.py [--orders 1000000] [--products 100000] [--contacts 500000]
                           [--stores sqlite,postgresql] [--runs 3] [--no-docs]

Stores an account's records through the worker's own write (``patron.model.storage.write``: columns,
numbering and defects as the worker keeps them, without the merge of a record already stored): orders
over three years with one month missing, products and contacts, with known defects every thousandth
record. Checks that the report finds exactly those, then times the whole report ``--runs`` times (the
median). Then the writes beside it: 100-order writes timed alone, and while another process computes
reports of the same account without pause (the median of each, and their ratio). PostgreSQL runs on a
throwaway cluster (``initdb``). Prints JSON and rewrites the report section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
from common import machine, write_section

from conftest import PostgresCluster
from patron import accounts, report
from patron.config import Settings
from patron.model.storage import KINDS, Changes, write
from patron.store import Store, open_store

STEP = 5000
EVERY = 1000  # one record in this many has each defect
NOW = datetime.now(UTC)
MONTHS = 36
GAP = 20  # the month (from the first) with no orders: a missing import


def _at(i: int, n: int) -> str:
    """Order ``i`` of ``n``, placed over the last three years' calendar months, none in month GAP."""
    month = (i * MONTHS) // n
    if month == GAP:
        month += 1
    first = NOW.year * 12 + NOW.month - 1 - MONTHS  # months since year 0, of the first month
    year, month0 = divmod(first + month, 12)
    moment = datetime(year, month0 + 1, 1 + i % 28, (i // 28) % 24, i % 60, tzinfo=UTC)
    return min(moment, NOW - timedelta(hours=1)).isoformat()


def customers(orders: int) -> int:
    """How many customers ``orders`` orders are of (five orders each)."""
    return max(1, orders // 5)


def order(i: int, n: int, products: int) -> dict[str, Any]:
    d = i % EVERY
    pid = f"p-{i % products}"
    doc: dict[str, Any] = {
        "@type": "order",
        "id": f"o-{i}",
        "timestamp": _at(i, n),
        "currency": "GBP",
        "status": "complete",
        "is_valid": True,
        "channel": "online",
        "customer": {"id": f"c-{i % customers(n)}", "email": f"shopper{i % customers(n)}@example.com"},
        "lineitems": [
            {"product_id": pid, "quantity": 2, "unit_price": 15.0, "subtotal": 30.0},
            {"product_id": f"p-{(i + 7) % products}", "quantity": 1, "unit_price": 49.0, "subtotal": 49.0},
        ],
        "subtotal": 79.0,
        "shipping": 5.5,
        "tax": 0.0,
        "discount": 0.0,
        "grand_total": 84.5,
        "shipping_address": {"city": "London", "postcode": "N1 9GU", "country_code": "GB"},
    }
    if d == 1:
        doc["lineitems"][0]["product_id"] = f"p-ghost-{i}"
    elif d == 2:
        doc["subtotal"], doc["grand_total"] = 80.0, 85.5
    elif d == 3:
        doc["grand_total"] = 90.0
    elif d == 4:
        doc["currency"] = "EUR"
    elif d == 5:
        doc["timestamp"] = (NOW + timedelta(days=365)).isoformat()
    elif d == 6:
        del doc["customer"]
    elif d == 7:
        doc["is_valid"] = False
    elif d == 8:
        doc["lineitems"][0]["variant_id"] = pid
    elif d == 9:
        doc["customer"]["email"] = f"other{i}@example.com"
    return doc


def product(i: int) -> dict[str, Any]:
    d = i % EVERY
    doc: dict[str, Any] = {
        "@type": "product",
        "id": f"p-{i}",
        "title": f"Product {i}",
        "price": 15.0,
        "currency": "GBP",
        "url": f"https://shop.example/p/{i}",
        "image_url": f"https://shop.example/p/{i}.jpg",
        "is_active": True,
    }
    if d == 1:
        del doc["url"], doc["price"]
    elif d == 2:
        doc.update(is_variant=True, parent_id=f"p-ghost-parent-{i}")
    elif d == 3:
        doc["listings"] = [{"store": "fr", "price": 15.0}]
    return doc


def contact(i: int) -> dict[str, Any]:
    d = i % EVERY
    doc: dict[str, Any] = {
        "@type": "contact",
        "@collection": "default",
        "id": f"k-{i}",
        "email": f"person{i}@example.com",
        "customer_id": f"cust-{i}",
        "marketing_optin": "EXPLICITLY_OPTEDIN",
        "phone_number": "+447400123456",
        "country_id": "GB",
    }
    if d == 1:
        del doc["marketing_optin"]
    elif d == 2:
        doc.update(marketing_optin="NOT_SPECIFIED", timestamp_subscribed=NOW.isoformat())
    elif d == 3:
        doc["phone_number"] = "+4400000000"
    elif d == 4:
        doc["email"] = f"person{i - 1}@example.com"  # the previous contact's, under another customer id
    return doc


def expected(orders: int, products: int, contacts: int) -> dict[str, int]:
    def every(n: int, d: int) -> int:
        return sum(1 for i in range(n) if i % EVERY == d)

    return {
        "orders.unknown_product": every(orders, 1),
        "orders.subtotal_mismatch": every(orders, 2),
        "orders.grand_total_mismatch": every(orders, 3),
        "orders.foreign_currency_without_base": every(orders, 4),
        "orders.timestamp_out_of_range": every(orders, 5),
        "orders.no_customer": every(orders, 6),
        "orders.complete_but_invalid": every(orders, 7),
        "orders.variant_without_options": every(orders, 8),
        "orders.customer_id_emails": len({i % customers(orders) for i in range(orders) if i % EVERY == 9}),
        "products.missing_fields": every(products, 1),
        "products.unknown_parent": every(products, 2),
        "products.listing_without_currency": every(products, 3),
        "contacts.no_marketing_optin": every(contacts, 1),
        "contacts.subscribed_without_optin": every(contacts, 2),
        "contacts.invalid_phone": every(contacts, 3),
        "contacts.email_customer_ids": every(contacts, 4),
        "history.order_gaps": 1,
    }


def store_records(store: Store, account_id: int, record_type: str, docs: list[dict[str, Any]]) -> None:
    kind = KINDS[record_type]
    rows = {}
    for doc in docs:
        key = kind.key_of(doc)
        rows[key] = {
            "data": doc,
            "updated_at": NOW,
            "created_at": NOW,
            **{c.name: v for c, v in zip(kind.key_columns(), key, strict=True)},
        }
    store.write_blocking(lambda conn: write(conn, Changes(kind, account_id, rows, {}, [])))


def seed(store: Store, account_id: int, args: argparse.Namespace) -> float:
    started = time.perf_counter()
    for start in range(0, args.products, STEP):
        docs = [product(i) for i in range(start, min(start + STEP, args.products))]
        store_records(store, account_id, "product", docs)
    for start in range(0, args.contacts, STEP):
        docs = [contact(i) for i in range(start, min(start + STEP, args.contacts))]
        store_records(store, account_id, "contact", docs)
    for start in range(0, args.orders, STEP):
        docs = [order(i, args.orders, args.products) for i in range(start, min(start + STEP, args.orders))]
        store_records(store, account_id, "order", docs)
    return time.perf_counter() - started


def _settings(url: str | None, data_dir: Path) -> Settings:
    return replace(Settings(), data_dir=data_dir, database_url=url, read_budget=3600.0)


def _reports_forever(url: str | None, data_dir: str, account_id: int, ready: Any, stop: Any) -> None:
    """A process computing reports of the account until ``stop`` is set."""
    store = open_store(_settings(url, Path(data_dir)))
    store.start()
    try:
        ready.set()
        while not stop.is_set():
            store.read_blocking(lambda conn: report.report(conn, account_id, datetime.now(UTC)))
    finally:
        store.close()


def write_latency(store: Store, account_id: int, first: int, count: int) -> list[float]:
    """Seconds each of ``count`` writes of 100 new orders takes."""
    took = []
    for n in range(count):
        docs = [order(first + n * 100 + i, 10**9, 1000) for i in range(100)]
        started = time.perf_counter()
        store_records(store, account_id, "order", docs)
        took.append(time.perf_counter() - started)
    return took


def measure(name: str, url: str | None, data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    store = open_store(_settings(url, data_dir))
    if url is not None:
        store.migrate()
    store.start()
    try:
        account, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "bench", "staging"))
        seeded = seed(store, account.id, args)
        found = store.read_blocking(lambda conn: report.report(conn, account.id, datetime.now(UTC)))
        counts = {f.rule: f.count for f in found.findings}
        wrong = {
            r: (counts.get(r), n) for r, n in expected(args.orders, args.products, args.contacts).items()
        }
        wrong = {r: got for r, got in wrong.items() if got[0] != got[1]}
        if wrong:
            raise SystemExit(f"{name}: the report found other counts than seeded (found, seeded): {wrong}")
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            store.read_blocking(lambda conn: report.report(conn, account.id, datetime.now(UTC)))
            times.append(time.perf_counter() - started)
        alone = write_latency(store, account.id, 10**8, args.writes)
        context = multiprocessing.get_context("spawn")
        ready, stop = context.Event(), context.Event()
        child = context.Process(
            target=_reports_forever, args=(url, str(data_dir), account.id, ready, stop), daemon=True
        )
        child.start()
        ready.wait(120)
        time.sleep(1.0)  # the first report under way
        beside = write_latency(store, account.id, 2 * 10**8, args.writes)
        stop.set()
        child.join(300)
    finally:
        store.close()
    return {
        "store": name,
        "seed_seconds": round(seeded, 1),
        "report_seconds": round(statistics.median(times), 2),
        "write_ms_alone": round(1000 * statistics.median(alone), 1),
        "write_ms_beside_report": round(1000 * statistics.median(beside), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=500_000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--writes", type=int, default=30, help="100-order writes timed, alone and beside")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    results = []
    for name in args.stores.split(","):
        with tempfile.TemporaryDirectory(prefix="patron-bench-report-") as directory:
            if name == "sqlite":
                results.append(measure(name, None, Path(directory), args))
            else:
                cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="patron-bench-pg-")))
                try:
                    results.append(measure(name, cluster.new_database(), Path(directory), args))
                finally:
                    cluster.stop()
    print(json.dumps(results, indent=2))
    if args.no_docs:
        return
    size = f"{args.orders:,} orders, {args.products:,} products, {args.contacts:,} contacts"
    rows = []
    for r in results:
        store = "SQLite" if r["store"] == "sqlite" else "PostgreSQL"
        rows.append((f"{store}: the whole report", f"{r['report_seconds']} s", "", "", "under 10 s"))
        rows.append(
            (
                f"{store}: a 100-order write beside a report",
                f"{r['write_ms_beside_report']} ms",
                f"{r['write_ms_alone']} ms alone",
                f"{r['write_ms_beside_report'] / r['write_ms_alone']:.2f}",
                "",
            )
        )
    preamble = (
        f"`python bench/report.py` ({size}; {machine()}). The median of {args.runs} whole reports; "
        f"then the median of {args.writes} writes of 100 orders alone and while another process "
        "computes reports of the same account without pause."
    )
    write_section("report", preamble, rows)


if __name__ == "__main__":
    main()
