"""How long each console page takes on a large account, against the console's aim of 300 ms a page.

    python bench/console.py [--orders 1000000] [--profiles 500000] [--sessions 100000] [--samples 10]
                            [--no-docs]

Seeds a fresh SQLite store through SQLAlchemy (the rows the worker would have written): orders placed
over the last three years, profiles created over the last year, tracking sessions over the last 30 days
from a few sources, and a week of push requests. Creates an operator (``patron.operators``), starts
``patron serve``, signs in over HTTPS and times each console page ``--samples`` times (the median and
the slowest): the accounts page, the dashboard, the dashboard's chart data, the integration check, a
rule's samples, and the account's other pages where this version of the console has them. The server
sends no ``Server-Timing`` header, so the time is the request's on loopback (one at a time, after a
warming request). Prints JSON and rewrites the console section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
from common import fresh, machine, write_section

from conftest import start_server
from patron import operators
from patron.config import Settings
from patron.store import open_store
from patron.store.schema import accounts, import_batches, orders, profiles, tracking_sessions

CHUNK = 20_000
AIM_MS = 300
#: The integration check is the report itself (loaded after the dashboard): its own aim, 10 s.
REPORT_AIM_MS = 10_000
EMAIL, PASSWORD = "bench@example.com", "a bench operator's password"
NOW = datetime.now(UTC)
SOURCES = (
    '{"referring_domain":"www.google.com","medium":"organic","source":"www.google.com"}',
    '{"referring_domain":"news.example","medium":"email","campaign":"spring","source":"newsletter"}',
    '{"medium":"direct","source":"direct"}',
    '{"referring_domain":"blog.example","medium":"referral","source":"blog.example"}',
    None,
)
#: The account's other pages, timed where this version of the console has them.
OTHER_PAGES = ("imports", "live", "customers", "catalogue", "lists", "email", "settings")


def _placed(i: int, n: int) -> str:
    """Order ``i`` of ``n``: placed over the last three years, the newest an hour ago."""
    return (NOW - timedelta(hours=1) - timedelta(days=3 * 365) * ((n - 1 - i) / max(1, n))).isoformat()


def seed(data_dir: Path, account_hash: str, order_count: int, profile_count: int, session_count: int) -> None:
    store = open_store(replace(Settings(), data_dir=data_dir, database_url=None))
    store.start()
    try:
        account = store.read_blocking(
            lambda conn: conn.execute(
                select(accounts.c.id).where(accounts.c.hash == account_hash)
            ).scalar_one()
        )
        data = '{"@type":"order","id":"o","currency":"GBP","grand_total":84.5}'
        for start in range(0, order_count, CHUNK):
            rows = [
                {
                    "account_id": account,
                    "order_id": f"o-{n}",
                    "customer_id": f"c-{n // 5}",
                    "customer_email": f"shopper{n // 5}@example.com",
                    "revenue": 84.5,
                    "items": 3,
                    "counted": n % 50 != 0,
                    "placed_at": _placed(n, order_count),
                    "currency": "GBP",
                    "seq": n + 1,
                    "data": data,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for n in range(start, min(start + CHUNK, order_count))
            ]
            store.write_blocking(lambda conn, r=rows: conn.execute(insert(orders), r))  # type: ignore[misc]
        for start in range(0, profile_count, CHUNK):
            people = [
                {
                    "account_id": account,
                    "profile_id": f"{n:04x}-{n:06x}-bench0",
                    "email": f"person{n}@example.com",
                    "data": "{}",
                    "created_at": NOW - timedelta(days=365) * ((profile_count - n) / profile_count),
                    "updated_at": NOW,
                }
                for n in range(start, min(start + CHUNK, profile_count))
            ]
            store.write_blocking(lambda conn, r=people: conn.execute(insert(profiles), r))  # type: ignore[misc]
        for start in range(0, session_count, CHUNK):
            visits = []
            for n in range(start, min(start + CHUNK, session_count)):
                began = NOW - timedelta(days=30) * ((session_count - n) / session_count)
                visits.append(
                    {
                        "account_id": account,
                        "session_id": f"s-{n}",
                        "cid": f"v-{n % 10_000}",
                        "source": SOURCES[n % len(SOURCES)],
                        "page_views": 3,
                        "started_at": began,
                        "last_at": began,
                        "ended_at": began + timedelta(minutes=30),
                        "outcome": "ended",
                    }
                )
            store.write_blocking(lambda conn, r=visits: conn.execute(insert(tracking_sessions), r))  # type: ignore[misc]
        pushes = [  # a week of pushes, ten an hour
            {
                "account_id": account,
                "request_id": f"r-{n}",
                "record_type": ("order", "contact", "product")[n % 3],
                "records": b"[]",
                "accepted": 100,
                "rejected": n % 7,
                "status": "applied",
                "applied": 100,
                "received_at": NOW - timedelta(minutes=6 * n),
                "applied_at": NOW - timedelta(minutes=6 * n),
            }
            for n in range(7 * 24 * 10)
        ]
        store.write_blocking(lambda conn: conn.execute(insert(import_batches), pushes))
        password_hash = operators.hash_password(PASSWORD)
        store.write_blocking(
            lambda conn: operators.create_operator(conn, EMAIL, "admin", password_hash, [account_hash])
        )
    finally:
        store.close()


def timed(client: httpx.Client, path: str, samples: int, headers: dict[str, str]) -> dict[str, float] | None:
    """The median and slowest time of ``path`` in ms; ``None`` where the page does not exist."""
    warm = client.get(path, headers=headers)
    if warm.status_code == 404:
        return None
    assert warm.status_code == 200, (path, warm.status_code, warm.text[:500])
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        answer = client.get(path, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        assert answer.status_code == 200, (path, answer.status_code)
        server = answer.headers.get("server-timing")
        times.append(_server_ms(server) if server else elapsed)
    return {"p50_ms": statistics.median(times), "max_ms": max(times)}


def _server_ms(header: str) -> float:
    """The total of a ``Server-Timing`` header's durations (``name;dur=12.3, ...``)."""
    return sum(float(part.split("dur=")[1].split(";")[0]) for part in header.split(",") if "dur=" in part)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--profiles", type=int, default=500_000)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    work, data_dir, tenant = fresh("console", "--data", "unlimited")
    started = time.monotonic()
    seed(data_dir, tenant.hash, args.orders, args.profiles, args.sessions)
    seeded = time.monotonic() - started
    server = start_server(data_dir, "--log-level", "WARNING", "--no-worker")
    base = f"/console/accounts/{tenant.hash}"
    pages = {
        "Accounts": ("/console/", {}),
        "Dashboard": (base, {}),
        "Dashboard's chart data": (f"{base}/charts", {}),
        "Integration check": (f"{base}/report", {"HX-Request": "true"}),
        "A rule's samples": (f"{base}/report/orders.no_customer", {}),
        **{name.capitalize(): (f"{base}/{name}", {}) for name in OTHER_PAGES},
    }
    results: dict[str, Any] = {
        "seeded_seconds": seeded,
        "orders": args.orders,
        "profiles": args.profiles,
        "sessions": args.sessions,
        "pages": {},
    }
    try:
        with server.client(follow_redirects=False) as client:
            signed = client.post("/console/sign-in", data={"email": EMAIL, "password": PASSWORD})
            assert signed.status_code == 303, signed.text
            for name, (path, headers) in pages.items():
                found = timed(client, path, args.samples, headers)
                if found is not None:
                    results["pages"][name] = {"path": path.replace(tenant.hash, "{hash}"), **found}
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if not args.no_docs:
        aims = {name: REPORT_AIM_MS if name == "Integration check" else AIM_MS for name in results["pages"]}
        rows = [
            (
                f"{name} (`GET {at['path']}`)",
                f"median {at['p50_ms']:.1f} ms, slowest {at['max_ms']:.1f} ms",
                "",
                "",
                f"≤ {aims[name]:,} ms" + ("" if at["p50_ms"] <= aims[name] else " (missed)"),
            )
            for name, at in results["pages"].items()
        ]
        missing = [name.capitalize() for name in OTHER_PAGES if name.capitalize() not in results["pages"]]
        preamble = (
            f"Measured by `python bench/console.py --samples {args.samples}` on {time.strftime('%Y-%m-%d')},"
            f" {machine()}: {args.orders:,} orders (over three years), {args.profiles:,} profiles (over a"
            f" year), {args.sessions:,} tracked sessions (over 30 days) and a week of pushes seeded in one"
            f" account on SQLite in {seeded:.0f} s; then each console page {args.samples} times, signed in,"
            " over HTTPS on loopback, one at a time (the request's time: the server sends no"
            " `Server-Timing`). The integration check is fetched as the dashboard fetches it (htmx)."
            + (f" Pages this version does not have: {', '.join(missing)}." if missing else "")
        )
        write_section("console", preamble, rows)


if __name__ == "__main__":
    main()
