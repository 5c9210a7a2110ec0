"""Records/s the worker applies (entities, identity resolution and profiles), without HTTP.

    python bench/apply.py [--batches 1500] [--customers repeat|distinct]

Queues ``--batches`` requests of 100 orders (``bench/push.py``'s realistic order) on a fresh SQLite
store through the Python API, then times ``apply_round`` until the queue is empty. ``repeat`` gives
every request the same 100 customers (so each profile ends with ``batches`` orders: the refresh of a
profile reads all its orders); ``distinct`` gives every order a new customer (a new profile and two
identities per order). Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).parent))
from push import RECORDS_PER_REQUEST, order

from patron import accounts
from patron.config import Settings
from patron.ingest.push import push
from patron.ingest.worker import apply_round
from patron.store import open_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=1500)
    parser.add_argument("--customers", choices=["repeat", "distinct"], default="repeat")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        store = open_store(replace(Settings(), data_dir=Path(directory), database_url=None))
        store.start()
        try:
            account, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "bench", "staging"))
            account = msgspec.structs.replace(account, queue_limit=10**9)

            async def fill() -> None:
                for n in range(args.batches):
                    first = n * RECORDS_PER_REQUEST if args.customers == "distinct" else 0
                    records = [order(str(n), first + i) for i in range(RECORDS_PER_REQUEST)]
                    await push(store, account, json.dumps(records).encode(), accounts.now())

            asyncio.run(fill())
            started = time.perf_counter()
            while apply_round(store):
                pass
            seconds = time.perf_counter() - started
        finally:
            store.close()
    records = args.batches * RECORDS_PER_REQUEST
    result = {
        "customers": args.customers,
        "records": records,
        "seconds": seconds,
        "records_per_s": records / seconds,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
