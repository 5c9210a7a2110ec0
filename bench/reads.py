"""Read latency at depth: ``GET /v2/orders?limit=250`` at offsets 0, 10,000, 100,000 and 1,000,000,
and ``GET /v2/profiles?email=`` among 1,000,000 profiles, over HTTPS on loopback.

    python bench/reads.py [--orders 1000250] [--profiles 1000000] [--samples 20] [--no-docs]

Seeds a fresh SQLite store through SQLAlchemy (the rows the worker would have written: orders with
their documents, profiles with theirs and their email identities), starts ``patron serve``, and
times each request ``--samples`` times (the median, and the 95th percentile). Prints JSON and
rewrites the reads section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
from common import fresh, machine, write_section
from push import order

from conftest import start_server
from patron.config import Settings
from patron.store import open_store
from patron.store.schema import accounts, identities, orders, profiles

CHUNK = 20_000
ORDERS = 0  # how many were seeded (set by main)
OFFSETS = (0, 10_000, 100_000, 1_000_000)


def profile_doc(profile_id: str, email: str) -> str:
    return msgspec.json.encode(
        {
            "@type": "profile",
            "id": profile_id,
            "customer_id": None,
            "email": email,
            "name": "Ada Byron",
            "firstname": "Ada",
            "lastname": "Byron",
            "marketing_optin": True,
            "identities": [{"id": email, "type": "email"}],
            "lists": [],
            "dates": {"acquired": "2026-01-01T00:00:00+00:00"},
            "stats": {"orders": 1, "orders_attempted": 1, "revenue": 84.5, "aov": 84.5, "visits": 0},
            "tags": [],
            "properties": {},
        }
    ).decode()


def seed(data_dir: Path, account_hash: str, order_count: int, profile_count: int) -> None:
    store = open_store(replace(Settings(), data_dir=data_dir, database_url=None))
    store.start()
    try:
        account = store.read_blocking(
            lambda conn: conn.execute(accounts.select().where(accounts.c.hash == account_hash)).one().id
        )
        now = datetime.now(UTC)
        template = json.dumps(order("@", 0))
        for start in range(0, order_count, CHUNK):
            rows = [
                {
                    "account_id": account,
                    "order_id": f"o-{n}",
                    "customer_id": f"c-{n}",
                    "customer_email": f"shopper{n}@example.com",
                    "revenue": 84.5,
                    "items": 3,
                    "counted": True,
                    "placed_at": "2026-11-20T10:15:00+00:00",
                    "seq": n + 1,
                    "data": template.replace("o-@-0", f"o-{n}").replace("shopper0@", f"shopper{n}@"),
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(start, min(start + CHUNK, order_count))
            ]
            store.write_blocking(lambda conn, r=rows: conn.execute(insert(orders), r))  # type: ignore[misc]
        for start in range(0, profile_count, CHUNK):
            ids = [
                (f"{n:04x}-{n:06x}-bench0", f"person{n}@example.com")
                for n in range(start, min(start + CHUNK, profile_count))
            ]
            people = [
                {
                    "account_id": account,
                    "profile_id": p,
                    "email": e,
                    "data": profile_doc(p, e),
                    "created_at": now,
                    "updated_at": now,
                }
                for p, e in ids
            ]
            held = [
                {"account_id": account, "kind": "email", "value": e, "profile": p, "created_at": now}
                for p, e in ids
            ]

            def write(
                conn: Any, people: list[dict[str, Any]] = people, held: list[dict[str, Any]] = held
            ) -> None:
                conn.execute(insert(profiles), people)
                conn.execute(insert(identities), held)

            store.write_blocking(write)
    finally:
        store.close()


def timed(client: Any, path: str, headers: dict[str, str], samples: int) -> dict[str, float]:
    client.get(path, headers=headers)  # warm
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        answer = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text
        expected = 250 if "offset=" not in path or int(path.split("offset=")[1]) + 250 <= ORDERS else None
        assert expected is None or len(answer.json()) == expected, (path, len(answer.json()))
    ordered = sorted(times)
    return {"p50_ms": statistics.median(ordered), "p95_ms": ordered[max(0, int(len(ordered) * 0.95) - 1)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_250)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    global ORDERS
    ORDERS = args.orders
    work, data_dir, tenant = fresh("reads", "--data", "unlimited")
    started = time.monotonic()
    seed(data_dir, tenant.hash, args.orders, args.profiles)
    seeded = time.monotonic() - started
    server = start_server(data_dir, "--log-level", "WARNING", "--no-worker")
    results: dict[str, Any] = {"seeded_seconds": seeded, "orders": args.orders, "profiles": args.profiles}
    try:
        with server.client() as client:
            for offset in OFFSETS:
                path = f"/v2/orders?limit=250&offset={offset}"
                results[f"orders_offset_{offset}"] = timed(client, path, tenant.headers, args.samples)
            picks = random.Random(7).sample(range(args.profiles), args.samples)
            times = []
            for n in picks:
                started = time.perf_counter()
                found = client.get(f"/v2/profiles?email=person{n}@example.com", headers=tenant.headers)
                times.append((time.perf_counter() - started) * 1000)
                assert found.status_code == 200 and len(found.json()) == 1, found.text
            ordered = sorted(times)
            results["profile_by_email"] = {
                "p50_ms": statistics.median(ordered),
                "p95_ms": ordered[max(0, int(len(ordered) * 0.95) - 1)],
            }
    finally:
        server.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if not args.no_docs:
        first = results["orders_offset_0"]["p50_ms"]
        rows = []
        for offset in OFFSETS:
            at = results[f"orders_offset_{offset}"]
            rows.append(
                (
                    f"`GET /v2/orders?limit=250&offset={offset:,}`",
                    f"p50 {at['p50_ms']:.1f} ms, p95 {at['p95_ms']:.1f} ms",
                    "the first page" if offset else "",
                    f"{at['p50_ms'] / first:.1f}" if offset else "",
                    "≤ 5 times the first page" if offset == OFFSETS[-1] else "",
                )
            )
        email = results["profile_by_email"]
        rows.append(
            (
                f"`GET /v2/profiles?email=` among {args.profiles:,} profiles",
                f"p50 {email['p50_ms']:.1f} ms, p95 {email['p95_ms']:.1f} ms",
                "",
                "",
                "",
            )
        )
        preamble = (
            f"Measured by `python bench/reads.py --samples {args.samples}` on {time.strftime('%Y-%m-%d')},"
            f" {machine()}: {args.orders:,} orders and {args.profiles:,} profiles (with their email"
            f" identities) seeded in one account on SQLite in {seeded:.0f} s, then each request"
            f" {args.samples} times over HTTPS on loopback, one at a time."
        )
        write_section("reads", preamble, rows)


if __name__ == "__main__":
    main()
