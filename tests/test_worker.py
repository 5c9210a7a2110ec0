"""The worker on its own: records that cannot be applied, and the ``patron worker`` process."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
from litestar.testing import TestClient
from sqlalchemy import Connection, insert, select

from conftest import PATRON, PostgresCluster, Tenant, push, wait_applied
from patron import accounts
from patron.app import create_app
from patron.config import Settings
from patron.ingest.queue import backlog, count_queued, latest_errors, pack
from patron.ingest.worker import apply_round
from patron.runtime import queue_kinds
from patron.store import Store, open_store
from patron.store.schema import import_batches, orders


def queue(store: Store, tenant: Tenant, records: list[dict[str, Any]], *, packed: bool = False) -> str:
    """Queue records as a push would, bypassing validation (as a batch written by an older version
    might be, in plain JSON unless ``packed``); returns the request id."""
    request_id = str(uuid.uuid4())

    def work(conn: Connection) -> None:
        account = accounts.get_account(conn, tenant.hash)
        conn.execute(
            insert(import_batches).values(
                request_id=request_id,
                account_id=account.id,
                record_type="order",
                records=pack(records) if packed else msgspec.json.encode(records),
                accepted=len(records),
                rejected=0,
                status="queued",
                received_at=accounts.now(),
            )
        )
        count_queued(conn, account.id, len(records))

    store.write_blocking(work)
    return request_id


def order_ids(store: Store) -> list[str]:
    return list(
        store.read_blocking(
            lambda conn: conn.execute(select(orders.c.order_id).order_by(orders.c.id)).scalars()
        )
    )


def test_a_record_that_cannot_be_applied_becomes_a_push_error_and_the_queue_moves_on(
    store: Store, tenant: Tenant
) -> None:
    good = {"@type": "order", "id": "o1", "status": "complete"}
    broken = {"@type": "order", "status": "no id"}  # cannot be keyed
    first = queue(store, tenant, [good, broken, {**good, "id": "o2"}])
    second = queue(store, tenant, [{**good, "id": "o3"}])
    while apply_round(store, queue_kinds()):
        pass
    assert order_ids(store) == ["o1", "o2", "o3"]
    account = store.read_blocking(lambda conn: accounts.get_account(conn, tenant.hash))
    errors = store.read_blocking(lambda conn: latest_errors(conn, account.id, 10, 0))
    assert [(e.request_id, e.index, e.error_path) for e in errors] == [(first, 1, "root")]
    assert errors[0].error_message.startswith("could not be applied")
    rows = store.read_blocking(
        lambda conn: conn.execute(
            select(import_batches.c.request_id, import_batches.c.status, import_batches.c.applied).order_by(
                import_batches.c.id
            )
        ).all()
    )
    assert [tuple(r) for r in rows] == [(first, "applied", 2), (second, "applied", 1)]
    assert store.read_blocking(lambda conn: backlog(conn, account.id)) == 0


def test_queue_copies_in_plain_json_from_before_packing_still_apply(store: Store, tenant: Tenant) -> None:
    queue(store, tenant, [{"@type": "order", "id": "plain", "status": "complete"}])
    queue(store, tenant, [{"@type": "order", "id": "packed", "status": "complete"}], packed=True)
    while apply_round(store, queue_kinds()):
        pass
    assert order_ids(store) == ["plain", "packed"]


def test_patron_worker_applies_when_woken_and_exits_when_its_waker_goes(
    settings: Settings, store: Store, tenant: Tenant
) -> None:
    queue(store, tenant, [{"@type": "order", "id": "w1"}])
    database = ["--database-url", settings.database_url] if settings.database_url else []
    worker = subprocess.Popen(
        [*PATRON, "--data-dir", str(settings.data_dir), *database, "worker", "--wake-stdin"],
        stdin=subprocess.PIPE,
    )
    try:
        assert worker.stdin is not None
        worker.stdin.write(b"\0")
        worker.stdin.flush()
        deadline = time.monotonic() + 30
        while order_ids(store) != ["w1"]:
            assert time.monotonic() < deadline, "the worker did not apply the queued batch"
            time.sleep(0.05)
        worker.stdin.close()  # as when patron serve dies
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_on_postgresql_idle_workers_are_woken_by_notify_not_by_polling(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    """``patron serve --no-worker`` and a ``patron worker`` of its own, which looks at the idle queue
    only every ten minutes: a push still reaches it at once, through LISTEN/NOTIFY."""
    settings = replace(Settings(), data_dir=tmp_path, database_url=postgres.new_database(), run_worker=False)
    store = open_store(settings)
    store.start()
    worker = subprocess.Popen(
        [*PATRON, "--database-url", str(settings.database_url), "worker", "--idle-poll", "600"]
    )
    try:
        with TestClient(create_app(settings, store)) as client:
            account, key = store.write_blocking(lambda c: accounts.create_account(c, "pg", "staging"))
            shop = Tenant(account.hash, key, "pg")
            first = push(client, shop, [{"@type": "order", "id": "n1"}], wait=False)
            wait_applied(client, shop, first["request_id"])  # the worker's first round, or a notification
            second = push(client, shop, [{"@type": "order", "id": "n2"}], wait=False)
            wait_applied(client, shop, second["request_id"], timeout=20)  # far less than 600 s
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        store.close()


def test_on_postgresql_workers_apply_accounts_in_parallel_and_each_account_in_order(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    """Three workers drain one queue of three accounts: every batch is applied once, and within each
    account in arrival order (each batch sets a later version of the same orders)."""
    settings = replace(Settings(), data_dir=tmp_path, database_url=postgres.new_database())
    store = open_store(settings)
    store.start()
    try:
        shops = []
        for name in ("a", "b", "c"):
            account, key = store.write_blocking(lambda c, n=name: accounts.create_account(c, n, "staging"))
            shops.append(Tenant(account.hash, key, name))
        for version in range(12):
            for shop in shops:
                records = [{"@type": "order", "id": f"o{i}", "properties": {"v": version}} for i in range(5)]
                queue(store, shop, records)

        def anything_queued() -> bool:
            query = select(import_batches.c.id).where(import_batches.c.status == "queued")
            return store.read_blocking(lambda c: c.execute(query).first()) is not None

        def work() -> None:
            while apply_round(store, queue_kinds(), limit_records=10) or anything_queued():
                pass  # the accounts left may be another worker's for now

        workers = [threading.Thread(target=work) for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        rows = store.read_blocking(
            lambda c: c.execute(
                select(
                    import_batches.c.account_id, import_batches.c.applied, import_batches.c.applied_at
                ).order_by(import_batches.c.id)
            ).all()
        )
        assert [r.applied for r in rows] == [5] * 36
        for account_id in {r.account_id for r in rows}:
            times = [r.applied_at for r in rows if r.account_id == account_id]
            assert times == sorted(times)  # arrival order within the account
        docs = store.read_blocking(lambda c: c.execute(select(orders.c.data)).scalars().all())
        assert len(docs) == 15 and all(msgspec.json.decode(d)["properties"] == {"v": 11} for d in docs)
    finally:
        store.close()
