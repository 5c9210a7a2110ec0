"""Segments: a new five-condition segment evaluated over many profiles (a dry-run count, and a full
build of its membership in the worker's bounded steps), on SQLite; and the worker's rate with 20 live
segments and 2 webhook endpoints beside its rate with none (``bench/apply.py``'s stores, one per load,
their rounds applied in turn).

The profiles are written straight into the database (documents and typed columns made by
``profiles.build``, as the worker makes them), not pushed: what is measured is the evaluation alone.

    python bench/segments.py [--profiles 1000000] [--runs 3] [--no-docs]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from apply import Load, applied, prepared, result
from common import fresh, machine, write_section
from push import RECORDS_PER_REQUEST
from sqlalchemy import insert, select

from patron.config import Settings
from patron.profiles import build
from patron.profiles.segments import evaluate, members
from patron.profiles.segments import rules as r
from patron.store import open_store
from patron.store.schema import accounts, list_members, profiles

FIVE = {
    "all": [
        {"field": "stats.orders", "op": "gte", "value": 2},
        {"consent": "email", "is": "subscribed"},
        {"field": "country_id", "op": "in", "value": ["GB", "FR"]},
        {"date": "dates.last_purchase", "before": "-90d"},
        {"not": {"list": "vip"}},
    ]
}
COUNTRIES = ["GB", "FR", "DE", "US", "ES"]
BATCH = 10_000


def document(i: int, rng: random.Random, now: datetime) -> build.Profile:
    orders = rng.choice([0, 0, 1, 1, 2, 3, 5])
    last = (now - timedelta(days=rng.randrange(1, 400))).isoformat() if orders else None
    first = (now - timedelta(days=rng.randrange(400, 800))).isoformat() if orders else None
    contact = {
        "email": f"p{i}@example.com",
        "firstname": "Pat",
        "lastname": f"Doe{i}",
        "country_id": rng.choice(COUNTRIES),
        "properties": {"tier": rng.choice(["gold", "silver", "bronze"])},
    }
    optin = rng.choice(["subscribed", "unsubscribed", None])
    facts = build.Facts(
        profile_id=f"{i:08x}-bench",
        created_at=now,
        contacts=[build.Contact((now, i), contact)],
        stats=build.OrderStats(orders, orders, 42.5 * orders, orders, first, last),
        identities=[("email", f"p{i}@example.com")],
        lists=[("vip", None)] if i % 10 == 0 else [],
        consent={"email": (optin, now)} if optin else {},
    )
    return build.document(facts)


def seed(settings: Settings, hash_: str, n: int) -> int:
    store = open_store(settings)
    store.start()
    rng, now = random.Random(7), datetime.now(UTC)
    try:
        account_id = store.read_blocking(
            lambda conn: conn.execute(select(accounts.c.id).where(accounts.c.hash == hash_)).scalar_one()
        )
        for start in range(0, n, BATCH):
            docs = [document(i, rng, now) for i in range(start, min(n, start + BATCH))]
            rows = [
                {
                    "account_id": account_id,
                    "profile_id": doc.id,
                    "email": doc.email,
                    "data": msgspec.json.encode(doc).decode(),
                    "created_at": now,
                    "updated_at": now,
                    **build.typed(doc),
                }
                for doc in docs
            ]
            vip = [
                {"account_id": account_id, "list_id": "vip", "profile": row["profile_id"], "created_at": now}
                for row in rows
                if int(row["profile_id"][:8], 16) % 10 == 0
            ]

            def write(conn, rows=rows, vip=vip):  # type: ignore[no-untyped-def]
                conn.execute(insert(profiles), rows)
                conn.execute(insert(list_members), vip)

            store.write_blocking(write)
        return int(account_id)
    finally:
        store.close()


#: The worker's loads compared: (label, what the account keeps).
LOADS = [
    ("none", Load()),
    ("20 segments", Load(segments=20)),
    (
        "20 segments, 2 endpoints taking segment entries and exits and orders",
        Load(webhooks=2, segments=20, subscribe="segment.entered,segment.exited,order.applied"),
    ),
    ("20 segments, 2 endpoints taking every event type", Load(webhooks=2, segments=20)),
]
#: bench/apply.py's customers, and how many requests of 100 orders each load applies.
WORKLOADS = {"repeat": 300, "distinct": 200}


def worker_rates(runs: int) -> dict[tuple[str, str], dict[str, Any]]:
    """For each workload, ``runs`` times: a store for each load (``apply.prepared``), their queues
    applied a round of each in turn (``apply.applied``), so that a change of the machine's speed falls
    on all of them alike. For each load and workload: the median records/s and seconds, the median of
    its ratios to the load with none of the same run, the median seconds of the rows written beside
    the records for segments and webhooks inserted again with raw ``sqlite3`` (``raw_beside_seconds``:
    their floor), and what the load wrote per order beside the records."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(runs):
        for customers, batches in WORKLOADS.items():
            with tempfile.TemporaryDirectory() as directory:
                places = [Path(directory) / str(n) for n in range(len(LOADS))]
                stores = [prepared(places[n], customers, batches, load) for n, (_, load) in enumerate(LOADS)]
                timed = applied(stores)
                records = batches * RECORDS_PER_REQUEST
                for place, store, each, (label, _) in zip(places, stores, timed, LOADS, strict=True):
                    found.setdefault((customers, label), []).append(result(place, store, records, each))
    summary = {}
    for (customers, label), outs in found.items():
        nones = found[customers, "none"]
        last = outs[-1]
        changes = (last["segment_entries"] + last["segment_exits"]) / last["records"]
        events = last["webhook_events"] / last["records"]
        ratios = [out["records_per_s"] / none["records_per_s"] for out, none in zip(outs, nones, strict=True)]
        summary[customers, label] = {
            "rate": statistics.median(out["records_per_s"] for out in outs),
            # each run beside the load with none of the same run, their rounds in turn
            "ratio": statistics.median(ratios),
            "spread": (min(ratios), max(ratios)),
            "seconds": statistics.median(out["seconds"] for out in outs),
            "beside_seconds": statistics.median(out["raw_beside_seconds"] for out in outs),
            "wrote": f"{changes:.1f} entries and exits, {events:.1f} events",
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each worker load (0: none)")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    work, data_dir, tenant = fresh("segments")
    settings = replace(Settings(), data_dir=data_dir, database_url=None, redis_url=None, read_budget=600.0)
    started = time.perf_counter()
    account_id = seed(settings, tenant.hash, args.profiles)
    seeded = time.perf_counter() - started
    rule = r.parse(FIVE)
    store = open_store(settings)
    store.start()
    try:
        at = datetime.now(UTC)
        started = time.perf_counter()
        count = store.read_blocking(lambda conn: evaluate.count(conn, account_id, rule, at))
        counted = time.perf_counter() - started
        segment_id = store.write_blocking(lambda conn: members.create(conn, account_id, "five", rule, at))
        started = time.perf_counter()
        steps = 0
        while store.write_blocking(lambda conn: members.build_step(conn, account_id, segment_id, 1, at, at)):
            steps += 1
        built = time.perf_counter() - started
        size = store.read_blocking(lambda conn: members.read(conn, account_id, segment_id=segment_id))[0].size
    finally:
        store.close()
        shutil.rmtree(work, ignore_errors=True)
    assert size == count, (size, count)
    result = {
        "profiles": args.profiles,
        "members": count,
        "seed_s": round(seeded, 1),
        "count_s": round(counted, 2),
        "build_s": round(built, 2),
        "build_steps": steps,
    }
    rates = worker_rates(args.runs) if args.runs else {}
    result["worker_records_per_s"] = {
        f"{c}: {label}": round(load["rate"]) for (c, label), load in rates.items()
    }
    result["worker_ratios"] = {
        f"{c}: {label}": [round(x, 2) for x in (load["ratio"], *load["spread"])]
        for (c, label), load in rates.items()
    }
    print(json.dumps(result))
    if not args.no_docs:
        preamble = (
            f"`python bench/segments.py --profiles {args.profiles}` on {machine()}, SQLite: a segment of five"
            " conditions (orders, email consent, country, last purchase more than 90 days ago, not in a"
            " list) over profiles written straight into the database. The dry-run count is one query; the"
            f" build evaluates {members.STEP:,} profiles per step (one write each, as the worker's"
            " `segment` rows do) and writes the members and their entries."
        )
        rows = [
            (
                f"dry-run count, {args.profiles:,} profiles",
                f"{counted:.1f} s",
                f"{count:,} members",
                "",
                "< 10 s",
            ),
            (f"full build, {args.profiles:,} profiles", f"{built:.1f} s", f"{steps} steps", "", "< 10 s"),
        ]
        for customers in WORKLOADS:
            base = rates.get((customers, "none"))
            for label, _ in LOADS[1:]:
                if base is None:
                    continue
                load = rates[customers, label]
                low, high = load["spread"]
                # the best ratio the rows beside the records allow, were nothing but their inserts added
                floor = base["seconds"] / (base["seconds"] + load["beside_seconds"])
                rows.append(
                    (
                        f"worker records/s, `{customers}` customers, {label}",
                        f"{load['rate']:,.0f}",
                        f"none: {base['rate']:,.0f}; per order: {load['wrote']}; at most {floor:.2f};"
                        f" runs {low:.2f} to {high:.2f}",
                        f"{load['ratio']:.2f}",
                        "≥ 0.80",
                    )
                )
        if rates:
            preamble += (
                f" The worker's rates are medians of {args.runs} runs; in each, a store for each load"
                " queued as `bench/apply.py --customers C --batches B` queues (`repeat`: 300 requests of"
                " 100 orders by the same 100 customers; `distinct`: 200 requests, a new customer each"
                " order, so every order makes a profile that enters its segments), and their queues"
                " applied a round of each store in turn, so that the machine's changes of speed fall on"
                " every load alike; a load's time is that of its own rounds; the segments are"
                " `apply.SEGMENTS` (stats, consent, country, dates, order windows, a product, lists,"
                " custom events, product views, abandoned baskets, combinations). A round's events are"
                " one row of the webhooks' outbox, whatever their number and that of the endpoints; the"
                " deliverer, which fans them out to the endpoints, is not run here. The ratio is the"
                ' median of each run\'s rate to that of the load with none in the same run ("runs": the'
                " lowest and highest of them)."
                ' "At most": the rate with none over its time plus that of inserting the rows the load'
                " wrote for segments and webhooks (members, entries and exits, the outbox's rows) again"
                " by raw `sqlite3`, in as many transactions: the best ratio those rows allow, were"
                " nothing but their inserts added."
            )
        write_section("segments", preamble, rows)


if __name__ == "__main__":
    main()
