"""``patron import``: a backfill of generated orders through the importer with the rate limits lifted,
until every record is applied; and an import at Patron's default push limit, against the rate allowed.

    python bench/import.py [--orders 1000000] [--limited 40000] [--concurrency 4] [--no-docs]

The orders are bench/push.py's (two line items each), each by a customer of its own, written to a JSON
Lines file before anything is timed; the products they name are imported first, untimed. ``patron
serve`` runs on a fresh SQLite data directory; each ``patron import`` runs as a subprocess over HTTPS on
loopback, on the same 2 cores. The backfill's account has every rate limit lifted and room for the whole
file in its queue; it is timed from the import's start until the queue is empty. The second account
keeps Patron's defaults (8 push requests a second of at most 100 records: 800 records/s); its rate is
the import's own, from its summary line. Beside the backfill, the same file is imported into a server
without its worker (``--no-worker``, a fresh data directory): the pace of the importer and the API
alone. Prints JSON and rewrites the import section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import psutil

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
from common import fresh, machine, queued, write_section
from push import RECORDS_PER_REQUEST, order

from conftest import PATRON, Server, Tenant, create_tenant_cli, run_cli, start_server

#: ``accounts set-limits`` options: every rate limit lifted, and a queue that holds any backfill.
LIFTED = [
    *(part for name in ("data", "push", "email", "gdpr", "merge") for part in (f"--{name}", "unlimited")),
    *("--queue", "100000000"),
]
#: Patron's default push limit: 8 requests a second of 100 records.
DEFAULT_RECORDS_PER_S = 8 * RECORDS_PER_REQUEST
SUMMARY = re.compile(
    r"imported: (?P<accepted>\d+) accepted, (?P<rejected>\d+) rejected.*?; (?P<run>\d+) this run in"
    r" (?P<seconds>[\d.]+) s, (?P<rate>\d+) records/s; (?P<requests>\d+) requests,"
    r" (?P<refused>\d+) answered 429"
)


def write_orders(path: Path, first: int, count: int) -> None:
    """``count`` orders, one a line, numbered from ``first`` (so that two files share no order)."""
    encode = msgspec.json.Encoder().encode
    with path.open("wb") as file:
        for i in range(first, first + count):
            file.write(encode(order("import", i)) + b"\n")


def write_products(path: Path) -> None:
    """The catalogue the orders name, imported before them (as a shop's history would be)."""
    encode = msgspec.json.Encoder().encode
    skus = sorted({line["product_id"] for line in order("import", 0)["lineitems"]})
    with path.open("wb") as file:
        for sku in skus:
            product = {"@type": "product", "id": sku, "title": sku, "price": 49.0, "currency": "GBP"}
            file.write(encode(product) + b"\n")


def run_import(server: Server, tenant: Tenant, path: Path, concurrency: int) -> dict[str, Any]:
    """``patron import`` of ``path`` as a subprocess: its summary's figures, when it started (on
    ``time.monotonic``), and the CPU seconds it used."""
    command = [*PATRON, "import", str(path), "--url", server.url, "--key", tenant.key, "--ca", str(server.ca)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(  # --restart: the checkpoint beside the file is an earlier run's
        [*command, "--concurrency", str(concurrency), "--restart"],
        capture_output=True,
        text=True,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    found = SUMMARY.search(last)
    if done.returncode != 0 or found is None:
        raise SystemExit(
            f"patron import failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}"
        )
    figures: dict[str, Any] = {k: int(v) for k, v in found.groupdict().items() if k != "seconds"}
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return figures | {"seconds": float(found["seconds"]), "started": started, "cpu_s": cpu}


def cpu_seconds(server: Server) -> tuple[float, float]:
    """CPU seconds used so far by the server's own process (the API) and by its worker."""
    root = psutil.Process(server.process.pid)

    def used(process: psutil.Process) -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    return used(root), sum(used(child) for child in root.children(recursive=True))


def import_alone(path: Path, concurrency: int) -> dict[str, Any]:
    """The import of ``path`` into a server without its worker, on a fresh data directory: the
    importer and the API alone."""
    work, data_dir, tenant = fresh("import-api", *LIFTED)
    server = start_server(data_dir, "--log-level", "WARNING", "--no-worker")
    try:
        return run_import(server, tenant, path, concurrency)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def applied(data_dir: Path, tenant: Tenant) -> int:
    """Records of ``tenant`` the worker has applied."""
    db = sqlite3.connect(f"file:{data_dir / 'patron.db'}?mode=ro", uri=True)
    try:
        query = (
            "select coalesce(sum(b.applied), 0) from import_batches b join accounts a on a.id = b.account_id"
            " where a.hash = ? and b.status = 'applied'"
        )
        return int(db.execute(query, (tenant.hash,)).fetchone()[0])
    finally:
        db.close()


def drained(data_dir: Path) -> float:
    """Wait until nothing is queued; the moment (``time.monotonic``) it was seen so."""
    while queued(data_dir):
        time.sleep(0.2)
    return time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders of the backfill")
    parser.add_argument("--limited", type=int, default=40_000, help="orders imported at the default limits")
    parser.add_argument("--concurrency", type=int, default=4, help="patron import --concurrency")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    work, data_dir, lifted = fresh("import", *LIFTED)
    backfill_file, limited_file = work / "backfill.jsonl", work / "limited.jsonl"
    catalogue = work / "products.jsonl"
    write_products(catalogue)
    write_orders(backfill_file, 0, args.orders)
    write_orders(limited_file, args.orders, args.limited)
    try:
        server = start_server(data_dir, "--log-level", "WARNING")
        try:
            run_import(server, lifted, catalogue, args.concurrency)
            drained(data_dir)
            api, worker = cpu_seconds(server)
            backfill = run_import(server, lifted, backfill_file, args.concurrency)
            applied_s = drained(data_dir) - backfill["started"]
            api_after, worker_after = cpu_seconds(server)
            backfill_applied = applied(data_dir, lifted) - len(catalogue.read_bytes().splitlines())
            defaults = create_tenant_cli(data_dir, "bench-defaults")
            limited = run_import(server, defaults, limited_file, args.concurrency)
            drained(data_dir)
            limited_applied = applied(data_dir, defaults)
            listed = json.loads(run_cli(data_dir, "accounts", "list", "--json").stdout)
        finally:
            server.stop()
        alone = import_alone(backfill_file, args.concurrency)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "concurrency": args.concurrency,
        "backfill": {
            "orders": args.orders,
            "accepted": backfill["accepted"],
            "rejected": backfill["rejected"],
            "applied": backfill_applied,
            "import_s": backfill["seconds"],
            "records_per_s_acknowledged": backfill["rate"],
            "applied_s": applied_s,
            "records_per_s_applied": backfill_applied / applied_s,
            "requests": backfill["requests"],
            "answered_429": backfill["refused"],
            "cpu_s": {"importer": backfill["cpu_s"], "api": api_after - api, "worker": worker_after - worker},
            "without_worker": {
                "import_s": alone["seconds"],
                "records_per_s_acknowledged": alone["rate"],
                "importer_cpu_s": alone["cpu_s"],
            },
        },
        "default_limits": {
            "push_limit": next(a["limits"]["push"] for a in listed if a["account_hash"] == defaults.hash),
            "orders": args.limited,
            "accepted": limited["accepted"],
            "rejected": limited["rejected"],
            "applied": limited_applied,
            "import_s": limited["seconds"],
            "records_per_s_acknowledged": limited["run"] / limited["seconds"],
            "share_of_allowed": limited["run"] / limited["seconds"] / DEFAULT_RECORDS_PER_S,
            "requests": limited["requests"],
            "answered_429": limited["refused"],
            "share_429": limited["refused"] / limited["requests"],
        },
    }
    print(json.dumps(result, indent=2))
    if not args.no_docs:
        write_docs(args, result)


def write_docs(args: argparse.Namespace, result: dict[str, Any]) -> None:
    back, limited = result["backfill"], result["default_limits"]
    cpu, alone = back["cpu_s"], back["without_worker"]
    rows = [
        (
            f"backfill of {back['orders']:,} orders through `patron import`, limits lifted:"
            " wall time until all are applied",
            f"{back['applied_s']:,.0f} s ({back['records_per_s_applied']:,.0f} records/s applied;"
            f" the import itself {back['import_s']:,.0f} s, {back['records_per_s_acknowledged']:,}"
            f" records/s acknowledged, {back['requests']:,} requests)",
            f"the same import into `patron serve --no-worker` (the importer and the API alone):"
            f" {alone['import_s']:,.0f} s, {alone['records_per_s_acknowledged']:,} records/s",
            f"{back['records_per_s_applied'] / alone['records_per_s_acknowledged']:.2f}",
            "< 180 s for 1,000,000",
        ),
        (
            "CPU used from the import's start until all are applied",
            f"worker {cpu['worker']:,.0f} s, API {cpu['api']:,.0f} s, importer {cpu['importer']:,.0f} s"
            f" (of {2 * back['applied_s']:,.0f} s on 2 cores)",
            "",
            "",
            "",
        ),
        (
            f"import of {limited['orders']:,} orders at the default push limit"
            f" ({limited['push_limit']} of 100 records: {DEFAULT_RECORDS_PER_S} records/s)",
            f"{limited['records_per_s_acknowledged']:,.0f} records/s acknowledged over the import's"
            f" {limited['import_s']:,.1f} s",
            f"{DEFAULT_RECORDS_PER_S} allowed",
            f"{limited['share_of_allowed']:.3f}",
            "≥ 0.98",
        ),
        (
            "the same import's requests answered 429",
            f"{limited['answered_429']} of {limited['requests']}",
            "",
            f"{limited['share_429']:.3f}",
            "< 0.01",
        ),
    ]
    preamble = (
        f"Measured by `python bench/import.py --orders {args.orders} --limited {args.limited}"
        f" --concurrency {args.concurrency}` on {time.strftime('%Y-%m-%d')}, {machine()}: orders with two"
        " line items, each by a customer of its own (the products they name imported first), read from a"
        " JSON Lines file by `patron import"
        f" --concurrency {args.concurrency}` (a subprocess) and pushed over HTTPS on loopback to"
        " `patron serve` (SQLite, its worker), the importer on the same 2 cores."
    )
    write_section("import", preamble, rows)


if __name__ == "__main__":
    main()
