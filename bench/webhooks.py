"""Webhook deliveries per second to a local HTTPS receiver, from the worker's deliverer.

    python bench/webhooks.py [--events 2000] [--endpoints 2] [--profiles 0] [--backlog 0] [--no-docs]

An account on a fresh SQLite store gets ``--endpoints`` endpoints on one receiver (a threaded HTTPS
server on 127.0.0.1, its certificate from Patron's generated local CA) and ``--events`` events for each,
written through the outbox in one transaction, each about one of ``--profiles`` profiles (0: each its
own, so none waits for another). Then the deliverer (``patron.webhooks.delivery.Deliverer``, as
``patron worker`` runs it) delivers them all, signed: the time from its start to the last delivery
recorded. With ``--backlog N``, the same again on a fresh store where another account's endpoints hold
N events (:func:`hold`): what an outage or a disabled endpoint costs everyone else's deliveries.
Prints JSON and rewrites the webhooks section of docs/performance.md.
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
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
from common import machine, write_section
from sqlalchemy import Connection, func, insert, select, update

from patron import accounts
from patron.config import Settings, Webhooks
from patron.store import Store, open_store
from patron.store.schema import webhook_endpoints, webhook_events
from patron.webhooks import endpoints, outbox
from patron.webhooks.delivery import Deliverer
from patron.webhooks.requests import NewEndpoint
from support.receiver import receiver


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=2)
    parser.add_argument("--profiles", type=int, default=0)
    parser.add_argument(
        "--backlog",
        type=int,
        default=0,
        help="events another account's endpoints hold (measured beside none)",
    )
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    total = args.events * args.endpoints
    seconds = deliver(args, 0)
    result: dict[str, object] = {
        "events": total,
        "endpoints": args.endpoints,
        "profiles": args.profiles,
        "seconds": round(seconds, 2),
        "deliveries_per_second": round(total / seconds, 1),
    }
    if args.backlog:
        held = deliver(args, args.backlog)
        result |= {"backlog": args.backlog, "backlog_deliveries_per_second": round(total / held, 1)}
    print(json.dumps(result, indent=2))
    if args.no_docs:
        return
    ordered = f"{args.profiles} profiles" if args.profiles else "each event its own profile"
    preamble = (
        f"`python bench/webhooks.py --events {args.events} --endpoints {args.endpoints} "
        f"--profiles {args.profiles} --backlog {args.backlog}` (SQLite; {machine()}). {total:,} events"
        f" ({ordered}) delivered, signed, over HTTPS to a local threaded receiver by the worker's"
        " deliverer: claimed, sent, and the outcomes of the attempts that end together committed in one"
        " write with the next claim, from the deliverer's start to the last delivery recorded. Then the"
        " same again beside another account's backlog: an endpoint in an outage holding half the"
        " backlog's events (the first of each of its profiles waiting for its retry, the others behind"
        " it) and a disabled endpoint holding the other half, due."
    )
    rows = [("Webhook deliveries per second", f"{result['deliveries_per_second']:,}", "", "", "")]
    if args.backlog:
        ratio = float(result["backlog_deliveries_per_second"]) / float(result["deliveries_per_second"])  # type: ignore[arg-type]
        rows.append(
            (
                f"Webhook deliveries per second, another account holding {args.backlog:,} events",
                f"{result['backlog_deliveries_per_second']:,}",
                "none held",
                f"{ratio:.2f}",
                "",
            )
        )
    write_section("webhooks", preamble, rows)


def deliver(args: argparse.Namespace, backlog: int) -> float:
    """Seconds the deliverer takes to deliver every event of a fresh store, ``backlog`` events of
    another account held meanwhile."""
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

            if backlog:
                hold(store, backlog)
            store.write_blocking(seed)
            total = args.events * args.endpoints
            allowed = Webhooks(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),), ca_files=(hooks.ca,))
            stop = threading.Event()
            deliverer = Deliverer(store, allowed, stop, poll=0.05)
            delivered = select(func.count()).where(
                webhook_events.c.status == outbox.DELIVERED, webhook_events.c.account_id == account.id
            )
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
    return seconds


def hold(store: Store, events: int) -> None:
    """Another account whose endpoints hold ``events`` events: one in an outage (ten events per
    profile, each profile's first retried in an hour, the others waiting behind it), one disabled
    (each event its own profile, due), as the deliverer left them."""
    account, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "held", "staging"))
    at = accounts.now()

    def made(conn: Connection) -> list[int]:
        for name in ("down", "off"):
            body = NewEndpoint(url=f"https://{name}.example.com/", event_types=["order.applied"])
            endpoints.create(conn, account.id, body, body.url, at)
        p = webhook_endpoints.c
        theirs = conn.execute(select(p.id).where(p.account_id == account.id).order_by(p.id)).scalars().all()
        conn.execute(update(webhook_endpoints).where(p.id == theirs[1]).values(enabled=False))
        return list(theirs)

    down, off = store.write_blocking(made)
    half = events // 2
    base = {"account_id": account.id, "type": "order.applied", "payload": "{}", "attempts": 1}
    base |= {"retry_until": at + timedelta(days=3), "created_at": at}
    for start in range(0, half, 10_000):
        rows = []
        for n in range(start, min(half, start + 10_000)):
            first = n % 10 == 0
            retry = {"next_attempt_at": at + timedelta(hours=1) if first else at}
            event = {
                "event_id": f"msg_d{n}",
                "profile": f"d{n // 10}",
                "status": "pending" if first else "waiting",
            }
            rows.append({**base, **retry, **event, "endpoint": down})
            due = {"next_attempt_at": at, "event_id": f"msg_o{n}", "profile": f"o{n}", "status": "pending"}
            rows.append({**base, **due, "endpoint": off})
        store.write_blocking(lambda conn, rows=rows: conn.execute(insert(webhook_events), rows))


if __name__ == "__main__":
    main()
