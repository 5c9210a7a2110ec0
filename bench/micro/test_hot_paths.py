"""Micro-benchmarks of the hot paths, so that a regression shows where it comes from:

    .venv/bin/pytest bench/micro --benchmark-only -o testpaths=bench

1. validating a push of 100 orders (``patron.records.validate.validate``);
2. the enqueue statement (``patron.ingest.push.push`` of an already-encoded body: validation, the
   queue row and its commit, on SQLite);
3. the apply step: one worker round of 500 orders (``apply_round``), entities and profiles.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import msgspec
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))
from push import RECORDS_PER_REQUEST, order

from patron import accounts
from patron.config import Settings
from patron.ingest.push import push
from patron.ingest.submit import Submitter
from patron.ingest.worker import apply_round
from patron.records.validate import validate
from patron.runtime import queue_kinds
from patron.store import Store, open_store

BODY = json.dumps([order("m", i) for i in range(RECORDS_PER_REQUEST)]).encode()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(replace(Settings(), data_dir=tmp_path, database_url=None))
    store.start()
    yield store
    store.close()


@pytest.fixture
def account(store: Store) -> accounts.Account:
    created, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "bench", "staging"))
    return msgspec.structs.replace(created, queue_limit=10**9)


def test_validate_100_orders(benchmark: Any) -> None:
    batch = benchmark(validate, BODY, datetime.now(UTC))
    assert len(batch.accepted) == RECORDS_PER_REQUEST and not batch.errors


def test_enqueue_100_orders(benchmark: Any, store: Store, account: accounts.Account) -> None:
    submit = Submitter(store, wake=lambda: None)
    loop = asyncio.new_event_loop()
    try:
        reply, _ = benchmark(lambda: loop.run_until_complete(push(submit, account, BODY, accounts.now())))
    finally:
        loop.close()
    assert reply.accepted == RECORDS_PER_REQUEST


def test_apply_a_round_of_500_orders(benchmark: Any, store: Store, account: accounts.Account) -> None:
    submit = Submitter(store, wake=lambda: None)  # the rounds timed are the worker
    batches = count()

    def queue_five() -> None:
        async def fill() -> None:
            for _ in range(5):
                n = next(batches)
                records = [order(str(n), n * RECORDS_PER_REQUEST + i) for i in range(RECORDS_PER_REQUEST)]
                await push(submit, account, json.dumps(records).encode(), accounts.now())

        asyncio.run(fill())

    applied = benchmark.pedantic(
        lambda: apply_round(store, queue_kinds()), setup=queue_five, rounds=20, iterations=1
    )
    assert applied == 5
