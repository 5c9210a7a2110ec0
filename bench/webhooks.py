"""Webhook deliveries per second to a local HTTPS receiver, from the worker's deliverer.

    python bench/webhooks.py [--events 2000] [--endpoints 2] [--profiles 0] [--no-docs]

An account on a fresh SQLite store gets ``--endpoints`` endpoints on one receiver (a threaded HTTPS
server on 127.0.0.1, its certificate from Patron's generated local CA) and ``--events`` events for each,
written through the outbox in one transaction, each about one of ``--profiles`` profiles (0: each its
own, so none waits for another). Then the deliverer (``patron.webhooks.delivery.Deliverer``, as
``patron worker`` runs it) delivers them all, signed: the time from its start to the last delivery
recorded. Prints JSON and rewrites the webhooks section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
from common import machine, write_section
from sqlalchemy import Connection, func, select

from patron import accounts
from patron.config import Settings, Webhooks
from patron.store import open_store
from patron.store.schema import webhook_events
from patron.webhooks import endpoints, outbox
from patron.webhooks.delivery import Deliverer
from patron.webhooks.requests import NewEndpoint
from support.receiver import receiver


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=2)
    parser.add_argument("--profiles", type=int, default=0)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="patron-bench-webhooks-") as work,
        receiver(Path(work) / "tls") as hooks,
    ):
        settings = replace(Settings(), data_dir=Path(work) / "data", database_url=None)
        store = open_store(settings)
        store.start()
        try:
            account, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "bench", "staging"))

            def seed(conn: Connection) -> None:
                at = accounts.now()
                for n in range(args.endpoints):
                    body = NewEndpoint(
                        url=hooks.url(f"/{n}"), event_types=["order.applied"], max_concurrency=8
                    )
                    endpoints.create(conn, account.id, body, body.url, at)
                for n in range(args.events):
                    profile = f"p{n % args.profiles if args.profiles else n}"
                    data = {
                        "order_id": f"o{n}",
                        "profile_id": profile,
                        "grand_total": 10.0,
                        "currency": "GBP",
                    }
                    outbox.emit(conn, account.id, "order.applied", data, at, profile=profile)

            store.write_blocking(seed)
            total = args.events * args.endpoints
            allowed = Webhooks(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),), ca_files=(hooks.ca,))
            stop = threading.Event()
            deliverer = Deliverer(store, allowed, stop, poll=0.05)
            delivered = select(func.count()).where(webhook_events.c.status == outbox.DELIVERED)
            started = time.monotonic()
            deliverer.thread.start()
            while store.read_blocking(lambda conn: conn.execute(delivered).scalar_one()) < total:
                time.sleep(0.05)
            seconds = time.monotonic() - started
            stop.set()
            deliverer.thread.join(timeout=30)
        finally:
            store.close()
    assert len(hooks.delivered()) >= total, "the receiver did not get every event"
    result = {
        "events": total,
        "endpoints": args.endpoints,
        "profiles": args.profiles,
        "seconds": round(seconds, 2),
        "deliveries_per_second": round(total / seconds, 1),
    }
    print(json.dumps(result, indent=2))
    if args.no_docs:
        return
    ordered = f"{args.profiles} profiles" if args.profiles else "each event its own profile"
    preamble = (
        f"`python bench/webhooks.py --events {args.events} --endpoints {args.endpoints} "
        f"--profiles {args.profiles}` (SQLite; {machine()}). {total:,} events ({ordered}) delivered, "
        "signed, over HTTPS to a local threaded receiver by the worker's deliverer: claimed, sent, and "
        "the outcomes of the attempts that end together committed in one write with the next claim, "
        "from the deliverer's start to the last delivery recorded."
    )
    rows = [("Webhook deliveries per second", f"{result['deliveries_per_second']:,}", "", "", "")]
    write_section("webhooks", preamble, rows)


if __name__ == "__main__":
    main()
