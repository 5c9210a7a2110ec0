"""The crash test: every push that got a 202 survives SIGKILL of ``patron serve``, applied exactly once.

Four writer threads push contacts and orders to a real ``patron serve`` over HTTPS while the test kills it
with SIGKILL at random moments, each after some acknowledged pushes, and restarts it on the same data
directory and port. Each writer alternates two kinds of request:

* an update of its own "hot" ids, all carrying the step number in ``properties.version``, re-sent
  unchanged until it gets a 202 (through connection errors, 503s and other 5xx), so that the last
  acknowledged value of each hot id is exactly known;
* a request of fresh ids, sent once and never again. Its 202 is a promise; a 429 or 503 promises that
  nothing was stored; after a connection error (or another 5xx) it may or may not have been stored, but
  it must then be stored whole: all of its records, or none.

Before each kill of the server, its worker process (if it runs one) is killed alone: the server restarts
it, and the backlog built up meanwhile makes it likely that the next kill lands while a round is being
applied. Half of the server kills take its whole process tree (the worker included), as a machine crash
would; the other half kill the server process alone, so that its worker outlives it for a while, racing
the next server's worker. Such workers must exit by themselves; any process left at the end is killed.

After the last restart every acknowledged request must reach status "applied", and the lists must hold
every acknowledged record exactly once, with its last acknowledged value, and nothing else but whole
unacknowledged requests. The log of each killed server is kept beside the data directory.
"""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from conftest import Server, Tenant, create_tenant_cli, free_port, run_cli, set_limits, start_server

KILLS = 4
WRITERS = [("contact", 0), ("contact", 1), ("order", 0), ("order", 1)]
HOT_IDS = 8  # ids of each writer updated with an increasing version
FRESH_IDS = 6  # ids of each fresh request
MIN_ACKS = 20  # acknowledged requests after a (re)start before the next kill
TRAFFIC = (0.3, 2.0)  # then this many more seconds of traffic (uniformly drawn) before the kill
DEADLINE = 60.0  # seconds any one eventual thing may take
PAGE = 250

Key = tuple[str, str]  # (record type, id)


def record(kind: str, record_id: str, version: int) -> dict[str, Any]:
    if kind == "contact":
        return {
            "@type": "contact",
            "id": record_id,
            "email": f"{record_id}@example.com",
            "firstname": f"v{version}",
            "properties": {"version": version},
        }
    return {
        "@type": "order",
        "id": record_id,
        "timestamp": "2024-05-01T10:00:00+00:00",
        "currency": "GBP",
        "grand_total": version + 0.5,
        "customer": {"id": f"customer-{record_id}", "email": f"{record_id}@example.com"},
        "lineitems": [{"product_id": "p1", "quantity": version}],
        "properties": {"version": version},
    }


def stored_form(doc: dict[str, Any]) -> dict[str, Any]:
    """A record as the API returns it once applied (contacts gain their default collection)."""
    return {**doc, "@collection": "default"} if doc["@type"] == "contact" else doc


def key_of(doc: dict[str, Any]) -> Key:
    return doc["@type"], doc["id"]


# what the clients were promised ------------------------------------------------------------------


@dataclass
class Ledger:
    """Every outcome the writers saw, shared between them."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[str, int] = field(default_factory=dict)  # request id -> records in it
    expected: dict[Key, dict[str, Any]] = field(default_factory=dict)  # last acknowledged value of each id
    uncertain: list[list[dict[str, Any]]] = field(default_factory=list)  # fresh requests, outcome unknown
    refused: list[list[dict[str, Any]]] = field(default_factory=list)  # fresh requests answered 429/503
    outcomes: Counter[str] = field(default_factory=Counter)

    def acknowledge(self, request_id: str, records: list[dict[str, Any]]) -> None:
        with self.lock:
            self.acked[request_id] = len(records)
            self.expected.update({key_of(r): stored_form(r) for r in records})

    def count(self, outcome: str) -> None:
        with self.lock:
            self.outcomes[outcome] += 1

    @property
    def acks(self) -> int:
        with self.lock:
            return len(self.acked)


ACKED, REFUSED, UNCERTAIN = "202", "refused", "uncertain"


def send(client: httpx.Client, tenant: Tenant, records: list[dict[str, Any]]) -> tuple[str, str | None]:
    """Push once: (outcome, request id). Any 4xx but a 429 is a failure of the test or the server."""
    try:
        response = client.post("/v2/push", json=records, headers=tenant.headers)
    except httpx.TransportError as exc:
        return f"{UNCERTAIN}: {type(exc).__name__}", None
    if response.status_code == 202:
        reply = response.json()
        assert (reply["accepted"], reply["rejected"]) == (len(records), 0), reply
        return ACKED, reply["request_id"]
    if response.status_code in (429, 503):
        return REFUSED, None
    assert response.status_code >= 500, f"{response.status_code}: {response.text[:2000]}"
    return f"{UNCERTAIN}: {response.status_code}", None


class Writer(threading.Thread):
    """Pushes one record type, alternating updates of its hot ids and fresh ids, until stopped."""

    def __init__(self, server: Server, tenant: Tenant, kind: str, n: int, ledger: Ledger) -> None:
        super().__init__(name=f"writer-{kind}-{n}", daemon=True)
        self.server, self.tenant, self.kind, self.n, self.ledger = server, tenant, kind, n, ledger
        self.stop = threading.Event()  # finish the current step (its update acknowledged), then stop
        self.abort = threading.Event()  # stop now
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.server.client() as client:
                step = 0
                while not self.stop.is_set():
                    step += 1
                    hot = [record(self.kind, f"{self.kind}-{self.n}-hot-{i}", step) for i in range(HOT_IDS)]
                    self.until_acknowledged(client, hot)
                    ids = (f"{self.kind}-{self.n}-{step}-{i}" for i in range(FRESH_IDS))
                    self.once(client, [record(self.kind, record_id, step) for record_id in ids])
        except BaseException as exc:  # reported by the test thread
            self.error = exc

    def until_acknowledged(self, client: httpx.Client, records: list[dict[str, Any]]) -> None:
        deadline = time.monotonic() + DEADLINE
        while not self.abort.is_set():
            outcome, request_id = send(client, self.tenant, records)
            self.ledger.count(outcome)
            if request_id is not None:
                self.ledger.acknowledge(request_id, records)
                return
            assert time.monotonic() < deadline, f"no 202 in {DEADLINE} s; last outcome {outcome}"
            time.sleep(0.05)

    def once(self, client: httpx.Client, records: list[dict[str, Any]]) -> None:
        outcome, request_id = send(client, self.tenant, records)
        self.ledger.count(outcome)
        if request_id is not None:
            self.ledger.acknowledge(request_id, records)
        else:
            with self.ledger.lock:
                (self.ledger.refused if outcome == REFUSED else self.ledger.uncertain).append(records)


def wait_for(condition: Callable[[], bool], writers: list[Writer], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        failed = [w.error for w in writers if w.error is not None]
        if failed:
            raise failed[0]
        assert time.monotonic() < deadline, f"not within {DEADLINE} s: {what}"
        time.sleep(0.02)


def more_acks(ledger: Ledger, writers: list[Writer], when: str) -> None:
    """Wait for :data:`MIN_ACKS` more acknowledged requests."""
    start = ledger.acks
    wait_for(lambda: ledger.acks >= start + MIN_ACKS, writers, f"{MIN_ACKS} acks {when}")


def crash(server: Server, whole_tree: bool) -> list[psutil.Process]:
    """SIGKILL the server, and with ``whole_tree`` its descendants too; returns the survivors."""
    descendants = psutil.Process(server.process.pid).children(recursive=True)
    server.process.kill()
    if whole_tree:
        for process in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(descendants, timeout=DEADLINE)
    assert server.process.wait(timeout=DEADLINE) == -signal.SIGKILL
    return [] if whole_tree else descendants


def kill_all(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(processes, timeout=DEADLINE)


# reading back ------------------------------------------------------------------------------------


def wait_all_applied(client: httpx.Client, tenant: Tenant, acked: dict[str, int]) -> None:
    """Every acknowledged request is known to the server and, eventually, applied in full."""
    pending = dict(acked)
    deadline = time.monotonic() + DEADLINE
    while pending:
        for request_id, records in list(pending.items()):
            response = client.get(f"/v2/push/{request_id}", headers=tenant.headers)
            assert response.status_code == 200, f"acknowledged request {request_id} lost: {response.text}"
            status = response.json()
            if status["status"] == "applied":
                assert (status["accepted"], status["applied"]) == (records, records), status
                del pending[request_id]
        assert time.monotonic() < deadline, f"{len(pending)} acknowledged requests not applied: {pending}"
        if pending:
            time.sleep(0.05)


def every_document(client: httpx.Client, tenant: Tenant, path: str) -> Iterator[dict[str, Any]]:
    """Every document of a list endpoint, page by page."""
    for offset in range(0, 1_000_000, PAGE):
        response = client.get(path, params={"limit": PAGE, "offset": offset}, headers=tenant.headers)
        assert response.status_code == 200, response.text
        page: list[dict[str, Any]] = response.json()
        yield from page
        if len(page) < PAGE:
            return
    raise AssertionError(f"{path} did not end")


def read_one(client: httpx.Client, tenant: Tenant, key: Key) -> dict[str, Any]:
    kind, record_id = key
    path = f"/v2/contacts/default/{record_id}" if kind == "contact" else f"/v2/orders/{record_id}"
    response = client.get(path, headers=tenant.headers)
    assert response.status_code == 200, f"{path}: {response.text}"
    doc: dict[str, Any] = response.json()
    return doc


# the test ----------------------------------------------------------------------------------------


# When the server is killed in the middle of a TLS exchange, httpx's connection pool can drop a socket
# without closing it; the garbage collector then warns. That is the client library's leak, not a
# Patron behaviour under test.
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_acknowledged_pushes_survive_sigkill(tmp_path: Path, patron_environment: dict[str, str]) -> None:
    data_dir = tmp_path / "data"
    env = patron_environment
    tenant = create_tenant_cli(data_dir, environment=env)
    set_limits(data_dir, tenant.hash, "--push", "unlimited", "--data", "unlimited", environment=env)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    port = free_port()
    ledger = Ledger()
    orphans: list[psutil.Process] = []  # processes of killed servers left running
    server = start_server(data_dir, port=port, environment=env)
    writers = [Writer(server, tenant, kind, n, ledger) for kind, n in WRITERS]
    try:
        for writer in writers:
            writer.start()
        for kill in range(KILLS):
            more_acks(ledger, writers, f"before killing worker {kill}")
            time.sleep(rng.uniform(*TRAFFIC))
            kill_all(psutil.Process(server.process.pid).children(recursive=True))
            more_acks(ledger, writers, f"before kill {kill}")
            time.sleep(rng.uniform(*TRAFFIC))
            orphans += crash(server, whole_tree=kill % 2 == 0)
            shutil.copy(server.log_path, server.log_path.with_suffix(f".killed-{kill}.log"))
            server = start_server(data_dir, port=port, environment=env)
        more_acks(ledger, writers, "after the last restart")
        for writer in writers:
            writer.stop.set()
        for writer in writers:
            writer.join(timeout=DEADLINE)
            assert not writer.is_alive(), f"{writer.name} did not stop"
            if writer.error is not None:
                raise writer.error
        with server.client() as client:
            check_everything_acknowledged_is_there(client, tenant, ledger, f"seed {seed}, {ledger.outcomes}")
        # the profiles, kept in the transactions that applied the records, are what a rebuild computes
        rebuilt = run_cli(data_dir, "profiles", "rebuild", "--account", tenant.hash, environment=env).stdout
        assert re.fullmatch(
            rf"{tenant.hash}: 0 records linked, [1-9][0-9]* profiles recomputed, 0 changed,"
            r" 0 lists recounted\n",
            rebuilt,
        )
        _, alive = psutil.wait_procs(orphans, timeout=DEADLINE)
        assert not alive, f"processes of killed servers still running: {alive}"
    finally:
        for writer in writers:
            writer.abort.set()
            writer.stop.set()
        server.stop()
        kill_all(orphans)
        for writer in writers:
            writer.join(timeout=DEADLINE)


def check_everything_acknowledged_is_there(
    client: httpx.Client, tenant: Tenant, ledger: Ledger, context: str
) -> None:
    wait_all_applied(client, tenant, ledger.acked)
    listed = [
        *every_document(client, tenant, "/v2/contacts/default"),
        *every_document(client, tenant, "/v2/orders"),
    ]
    stored = {key_of(doc): doc for doc in listed}
    duplicates = [key for key, times in Counter(map(key_of, listed)).items() if times > 1]
    assert not duplicates, f"listed more than once: {duplicates[:10]} ({context})"

    wrong = {key: stored.get(key) for key, doc in ledger.expected.items() if stored.get(key) != doc}
    assert not wrong, (
        f"{len(wrong)} acknowledged records missing or stale, e.g. {list(wrong.items())[:3]} ({context})"
    )
    for key in [key for key in ledger.expected if "-hot-" in key[1]]:
        assert read_one(client, tenant, key) == ledger.expected[key], key

    for records in ledger.refused:
        present = [key_of(r) for r in records if key_of(r) in stored]
        assert not present, f"stored although refused: {present} ({context})"
    stored_whole: dict[Key, dict[str, Any]] = {}
    for records in ledger.uncertain:
        present = [key_of(r) for r in records if key_of(r) in stored]
        assert len(present) in (0, len(records)), (
            f"request stored in part: {present} of {records} ({context})"
        )
        if present:
            stored_whole.update({key_of(r): stored_form(r) for r in records})
    assert all(stored[key] == doc for key, doc in stored_whole.items()), context

    assert stored.keys() == ledger.expected.keys() | stored_whole.keys(), context
    assert len(listed) == len(ledger.expected) + len(stored_whole), context
