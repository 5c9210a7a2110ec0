"""Backup and restore, on both stores, as docs/deploy.md tells an operator to do them: a backup taken
while a server keeps acknowledging pushes (``patron backup --to FILE`` on SQLite, ``pg_dump
--format=custom`` on PostgreSQL), restored into a new data directory or database, served again.

Every record acknowledged before the backup started is in the restored store: those applied then with
the same stored documents as the source's, those still queued then applied by the restored server's
worker; and the restored server goes on taking pushes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from conftest import (
    PATRON,
    PostgresCluster,
    Server,
    Tenant,
    push,
    run_cli,
    start_server,
    stop_process,
    wait_applied,
)
from patron import accounts
from patron.config import Settings
from patron.store import open_store

RECORDS_PER_PUSH = 20


def make_tenant(data_dir: Path, environment: dict[str, str]) -> Tenant:
    """An account with its limits lifted, made through the Python API."""
    settings = replace(Settings(), data_dir=data_dir, database_url=environment.get("PATRON_DATABASE_URL"))
    store = open_store(settings)
    store.start()
    try:
        account, key = store.write_blocking(lambda conn: accounts.create_account(conn, "shop", "staging"))
        lifted: dict[str, str | None] = dict.fromkeys(account.effective_limits, "unlimited")
        store.write_blocking(lambda conn: accounts.set_limits(conn, account.hash, lifted))
    finally:
        store.close()
    return Tenant(account.hash, key, "shop")


@contextmanager
def worker(data_dir: Path, environment: dict[str, str]) -> Iterator[None]:
    """A ``patron worker`` of its own (the server runs ``--no-worker``), stopped after its round."""
    env = {**os.environ, **environment, "PATRON_DATA_DIR": str(data_dir)}
    process = subprocess.Popen([*PATRON, "worker", "--idle-poll", "0.2"], env=env)
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        stop_process(process)


def records(push_number: int) -> list[dict[str, Any]]:
    return [
        {
            "@type": "contact",
            "id": f"c-{push_number}-{i}",
            "email": f"c{push_number}.{i}@example.com",
            "firstname": f"Ann {push_number}",
            "properties": {"push": push_number, "i": i},
        }
        for i in range(RECORDS_PER_PUSH)
    ]


class Pusher:
    """Pushes one request after another from a thread, until stopped: ``acknowledged`` holds each 202's
    request id and pushed records, in the order of the answers."""

    def __init__(self, server: Server, tenant: Tenant, first: int) -> None:
        self.acknowledged: list[tuple[str, list[dict[str, Any]]]] = []
        self._server, self._tenant, self._next = server, tenant, first
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        with self._server.client() as client:
            while not self._stop.is_set():
                pushed = records(self._next)
                self._next += 1
                reply = push(client, self._tenant, pushed, wait=False)
                self.acknowledged.append((reply["request_id"], pushed))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def contacts(client: httpx.Client, tenant: Tenant) -> dict[str, Any]:
    """Every stored contact of the account's default collection, by id."""
    found: dict[str, Any] = {}
    while page := client.get(
        "/v2/contacts/default", params={"limit": 250, "offset": len(found)}, headers=tenant.headers
    ).json():
        found.update((c["id"], c) for c in page)
    return found


def back_up(backend: str, data_dir: Path, environment: dict[str, str], target: Path, request: Any) -> None:
    if backend == "sqlite":
        result = run_cli(data_dir, "backup", "--to", str(target))
        assert f"backed up to {target}" in result.stdout
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    url = environment["PATRON_DATABASE_URL"]
    subprocess.run(
        [str(cluster.bin / "pg_dump"), "--format=custom", "--file", str(target), url],
        check=True,
        timeout=120,
    )


def restore(backend: str, backup: Path, data_dir: Path, request: Any) -> dict[str, str]:
    """The backup restored into ``data_dir`` (SQLite) or a new database; the restored store's environment."""
    data_dir.mkdir(mode=0o700)
    if backend == "sqlite":
        shutil.copyfile(backup, data_dir / "patron.db")
        (data_dir / "patron.db").chmod(0o600)
        return {}
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    name = f"restored_{os.getpid()}"
    with psycopg.connect(f"{cluster.url}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    url = f"{cluster.url}/{name}"
    restored = [
        str(cluster.bin / "pg_restore"),
        "--exit-on-error",
        "--no-owner",
        "--dbname",
        url,
        str(backup),
    ]
    subprocess.run(restored, check=True, timeout=120)
    return {"PATRON_DATABASE_URL": url}


def test_a_backup_taken_while_pushing_restores_every_acknowledged_record(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    environment: dict[str, str] = {}
    if backend == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        environment = {"PATRON_DATABASE_URL": cluster.new_database()}
    source_dir = tmp_path / "source"
    tenant = make_tenant(source_dir, environment)
    source = start_server(source_dir, "--no-worker", environment=environment)
    try:
        # Applied before the backup: ten pushes, applied by a worker that then stops.
        with worker(source_dir, environment), source.client() as client:
            for number in range(10):
                push(client, tenant, records(number))
        # Queued at the backup: pushes go on, from a thread, while the backup runs; no worker applies them.
        pusher = Pusher(source, tenant, first=10)
        try:
            while len(pusher.acknowledged) < 10:
                threading.Event().wait(0.05)
            before = list(pusher.acknowledged)  # acknowledged before the backup started
            backup = tmp_path / "patron.backup"
            back_up(backend, source_dir, environment, backup, request)
            after = len(pusher.acknowledged)
            while len(pusher.acknowledged) < after + 5:  # and the server still takes pushes
                threading.Event().wait(0.05)
        finally:
            pusher.stop()
        with worker(source_dir, environment), source.client() as client:
            for request_id, _ in pusher.acknowledged:
                wait_applied(client, tenant, request_id, timeout=60)
            at_source = contacts(client, tenant)
    finally:
        source.stop()
    expected = {r["id"] for number in range(10) for r in records(number)}
    expected |= {r["id"] for _, pushed in before for r in pushed}
    assert expected <= at_source.keys()

    restored_dir = tmp_path / "restored"
    restored_environment = restore(backend, backup, restored_dir, request)
    restored = start_server(restored_dir, environment=restored_environment)
    try:
        with restored.client() as client:
            for request_id, _ in before:  # queued at the backup: the restored worker applies them
                wait_applied(client, tenant, request_id, timeout=60)
            at_restored = contacts(client, tenant)
            reply = push(client, tenant, records(10_000))  # and it takes and applies new pushes
            assert reply["accepted"] == RECORDS_PER_PUSH
    finally:
        restored.stop()
    assert expected <= at_restored.keys()
    assert {i: at_restored[i] for i in expected} == {i: at_source[i] for i in expected}
    # nothing that was not acknowledged by the source
    assert at_restored.keys() <= {r["id"] for _, pushed in pusher.acknowledged for r in pushed} | expected
