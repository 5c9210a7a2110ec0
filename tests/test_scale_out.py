"""Scale-out on PostgreSQL and Redis: two ``patron serve --no-worker`` processes and three
``patron worker`` processes on one database, with a server and a worker killed (SIGKILL) and restarted
mid-run. Afterwards every acknowledged record is applied exactly once, updates of the same contacts
end at their last acknowledged value, and the account's push limit held across both servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx

from conftest import PATRON, PostgresCluster, Server, Tenant, run_cli, set_limits, start_server, wait_applied

#: The account's push limit; the run asks for far more, through both servers.
PUSH_LIMIT = 40
HOT = [f"hot-{i}" for i in range(5)]


class Workers:
    """``patron worker`` processes on one database, killed when the test ends."""

    def __init__(self, environment: dict[str, str], data_dir: Path, count: int) -> None:
        self._env = {**os.environ, **environment, "PATRON_DATA_DIR": str(data_dir)}
        self.running = [self._start() for _ in range(count)]

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*PATRON, "worker", "--idle-poll", "2"], env=self._env)

    def kill_and_restart(self, index: int) -> None:
        self.running[index].send_signal(signal.SIGKILL)
        self.running[index].wait(timeout=30)
        self.running[index] = self._start()

    def stop(self) -> None:
        for process in self.running:
            process.kill()
            process.wait(timeout=30)


def push(server: Server, tenant: Tenant, records: list[dict[str, Any]]) -> httpx.Response | None:
    """One push; None when the server is not there (killed, restarting)."""
    try:
        with server.client() as client:
            return client.post("/v2/push", json=records, headers=tenant.headers)
    except httpx.HTTPError:
        return None


def test_two_servers_and_three_workers_survive_kills_and_share_one_limit(
    tmp_path: Path, postgres: PostgresCluster, redis_url: str
) -> None:
    environment = {"PATRON_DATABASE_URL": postgres.new_database(), "PATRON_REDIS_URL": redis_url}
    data_dir = tmp_path / "data"
    created = json.loads(
        run_cli(data_dir, "accounts", "create", "--name", "shop", "--json", environment=environment).stdout
    )
    tenant = Tenant(created["account_hash"], created["api_key"], "shop")
    set_limits(
        data_dir,
        tenant.hash,
        "--push",
        f"{PUSH_LIMIT}/minute",
        "--data",
        "unlimited",
        environment=environment,
    )
    servers = [start_server(data_dir, "--no-worker", environment=environment) for _ in range(2)]
    acknowledged: dict[str, int] = {}  # request id -> the attempt it acknowledged
    last: dict[str, int] = {}  # hot contact -> last acknowledged version
    refused = 0
    workers = Workers(environment, data_dir, 3)
    try:
        for attempt in range(3 * PUSH_LIMIT):
            if attempt == PUSH_LIMIT // 2:  # mid-run: kill a worker and a server, then restart them
                workers.kill_and_restart(0)
                servers[1].process.send_signal(signal.SIGKILL)
                servers[1].process.wait(timeout=30)
                servers[1] = start_server(
                    data_dir, "--no-worker", port=servers[1].port, environment=environment
                )
            records = [
                {"@type": "contact", "id": contact, "properties": {"version": attempt}} for contact in HOT
            ] + [{"@type": "contact", "id": f"new-{attempt}", "email": f"n{attempt}@example.com"}]
            response = push(servers[attempt % 2], tenant, records)
            if response is None:
                continue
            if response.status_code == 429:
                refused += 1
                continue
            assert response.status_code == 202, response.text
            acknowledged[response.json()["request_id"]] = attempt
            last.update(dict.fromkeys(HOT, attempt))
        # Every acknowledged request is applied, once, by one of the workers.
        with servers[0].client() as client:
            for request_id in acknowledged:
                status = wait_applied(client, tenant, request_id, timeout=60)
                assert status["applied"] == status["accepted"] == 6
            contacts = client.get("/v2/contacts/default?limit=250", headers=tenant.headers).json()
    finally:
        workers.stop()
        for server in servers:
            server.stop()
    # The limit held across both servers: at most PUSH_LIMIT pushes acknowledged in the minute.
    assert len(acknowledged) <= PUSH_LIMIT < len(acknowledged) + refused
    by_id = {c["id"]: c for c in contacts}
    assert len(contacts) == len(by_id) == len(HOT) + len(acknowledged)  # each record once
    assert {f"new-{attempt}" for attempt in acknowledged.values()} <= by_id.keys()
    for contact in HOT:
        assert by_id[contact]["properties"]["version"] == last[contact]
