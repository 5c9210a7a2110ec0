"""``GET /metrics`` of a real ``patron serve``: the counters of every process of the host summed on
every scrape (two API processes, the worker it starts, a ``patron worker`` run by hand), and the
operator's metrics (the queue per account, records applied, rejects by reason, 429s by endpoint
class, beacons, the outbox, the database's size), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from conftest import PATRON, Server, Tenant, create_tenant_cli, eventually, set_limits, start_server
from patron.tracking import wire

PUSH_ROUTE = {"route": "/v2/push", "method": "POST", "status": "202"}
UNLIMITED = ["--data", "unlimited", "--push", "unlimited", "--email", "unlimited"]

Samples = list[tuple[str, dict[str, str], float]]


def scrape(server: Server) -> Samples:
    """Every sample of one scrape (on a new connection, so that either API process may answer)."""
    with server.client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    ]


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels`` (0 when there are none)."""
    return sum(v for n, found, v in samples if n == name and labels.items() <= found.items())


def present(samples: Samples, name: str, **labels: str) -> bool:
    return any(n == name and labels.items() <= found.items() for n, found, _ in samples)


def pushes_by_process(metrics_dir: Path) -> list[float]:
    """Pushes acknowledged as each process's own metric file counts them."""
    counted = []
    for path in sorted(metrics_dir.glob("counter_*.db")):
        merged = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        samples = [(s.name, s.labels, s.value) for family in merged for s in family.samples]
        counted.append(value(samples, "patron_http_requests_total", **PUSH_ROUTE))
    return [count for count in counted if count]


def push(server: Server, tenant: Tenant, records: list[dict[str, Any]]) -> httpx.Response:
    with server.client() as client:
        return client.post("/v2/push", json=records, headers=tenant.headers)


def contact(n: int) -> dict[str, Any]:
    return {"@type": "contact", "id": f"c{n}", "email": f"c{n}@example.com"}


def tenant_of(data_dir: Path, environment: dict[str, str], *limits: str, name: str = "shop") -> Tenant:
    tenant = create_tenant_cli(data_dir, name, environment=environment)
    set_limits(data_dir, tenant.hash, *limits, environment=environment)
    return tenant


def beacon(server: Server, account_hash: str, data: str) -> None:
    with server.client() as client:
        assert client.get(f"/track/v3/{account_hash}/event.gif", params={"data": data}).status_code == 200


EVENT = {"cid": "visitor1", "sid": "session1", "type": "pageview", "d": {"type": "homepage"}}


@contextmanager
def serving(data_dir: Path, *flags: str, environment: dict[str, str]) -> Iterator[Server]:
    server = start_server(data_dir, *flags, environment=environment)
    try:
        yield server
    finally:
        server.stop()


def test_two_api_processes_and_their_worker_report_the_same_sums_on_every_scrape(
    tmp_path: Path, patron_environment: dict[str, str]
) -> None:
    data_dir = tmp_path / "data"
    tenant = tenant_of(data_dir, patron_environment, *UNLIMITED)
    slow = tenant_of(data_dir, patron_environment, "--data", "1/hour", "--queue", "1", name="slow")
    with serving(data_dir, "--workers", "2", environment=patron_environment) as server:
        # Pushes on new connections, several at a time, until both API processes have taken some.
        sent = 0
        with ThreadPoolExecutor(4) as pool:
            while len(pushes_by_process(data_dir / "metrics")) < 2:
                assert sent < 200, "every push went to one API process"
                batch = range(sent, sent + 8)
                replies = list(pool.map(lambda n: push(server, tenant, [contact(n)]), batch))
                assert [r.status_code for r in replies] == [202] * 8
                sent += 8
        # One more, with a record that lacks its id: rejected, the other accepted.
        reply = push(server, tenant, [contact(sent), {"@type": "contact", "email": "x@example.com"}])
        assert reply.json()["rejected"] == 1
        sent += 1

        # 429s: the account's data rate, and its full queue (a push of two records under a limit of 1).
        with server.client() as client:
            statuses = [client.get("/v2/account", headers=slow.headers).status_code for _ in range(2)]
        assert statuses == [200, 429]
        assert push(server, slow, [contact(1), contact(2)]).status_code == 429

        # Beacons: one kept, one that does not decode, one for an account that does not exist.
        beacon(server, tenant.hash, wire.encode(EVENT))
        beacon(server, tenant.hash, "not-a-beacon")
        beacon(server, "0123456789abcdef", wire.encode(EVENT))

        # The outbox: a message delivered nowhere (no SMTP server: it stays queued) and a sandboxed one.
        for sandbox in (False, True):
            with server.client() as client:
                mail = client.post(
                    "/v2/transactional-email/send",
                    json={
                        "from": {"email": "shop@example.com"},
                        "to": {"email": "ann@example.com"},
                        "subject": "Hello",
                        "html": "<p>Hello</p>",
                        "sandbox": sandbox,
                    },
                    headers=tenant.headers,
                )
            assert mail.status_code == 202, mail.text

        # The worker's applied records show through the API processes' scrapes.
        records = sent + 1  # the tracking beacon is a queued record of its own

        def applied() -> list[Samples] | None:
            """Six scrapes that all say every record is applied (each API process reads the
            database's values at most every 5 s, so one may lag the other that long)."""
            scrapes = [scrape(server) for _ in range(6)]
            done = all(
                value(samples, "patron_worker_records_applied_total") == records
                and value(samples, "patron_queue_backlog_records") == 0
                for samples in scrapes
            )
            return scrapes if done else None

        scrapes = eventually(applied, "every record applied, as /metrics says")

    for samples in scrapes:
        assert value(samples, "patron_http_requests_total", **PUSH_ROUTE) == sent
        assert value(samples, "patron_http_request_duration_seconds_count", route="/v2/push") == sent + 1
        assert value(samples, "patron_worker_records_applied_total", type="contact") == sent
        assert value(samples, "patron_worker_records_applied_total", type="track") == 1
        assert value(samples, "patron_worker_round_duration_seconds_count") >= 1
        assert value(samples, "patron_push_rejected_records_total") == 1
        assert value(samples, "patron_push_rejected_records_total", reason="missing_field") == 1
        assert value(samples, "patron_http_throttled_total", **{"class": "data", "cause": "rate_limit"}) == 1
        assert value(samples, "patron_http_throttled_total", **{"class": "push", "cause": "queue_full"}) == 1
        assert value(samples, "patron_http_throttled_total") == 2
        assert value(samples, "patron_tracking_beacons_accepted_total") == 1
        assert value(samples, "patron_tracking_beacons_dropped_total", reason="undecodable") == 1
        assert value(samples, "patron_tracking_beacons_dropped_total", reason="unknown_account") == 1
        assert value(samples, "patron_email_messages", status="queued") == 1
        assert value(samples, "patron_email_messages", status="sandbox") == 1
        assert value(samples, "patron_email_messages", status="failed") == 0
        assert value(samples, "patron_database_metrics_up") == 1
        assert value(samples, "patron_database_size_bytes") > 0
        assert value(samples, "patron_queue_backlog_records") == 0
        assert not present(samples, "patron_queue_records")


def test_the_queue_per_account_shows_a_backlog_that_a_worker_run_by_hand_applies(
    tmp_path: Path, patron_environment: dict[str, str]
) -> None:
    """``serve --no-worker``: the backlog shows per account; a ``patron worker`` on the same host
    applies it, and its counters show in the server's /metrics. A new server starts from zero."""
    data_dir = tmp_path / "data"
    tenant = tenant_of(data_dir, patron_environment, *UNLIMITED)
    idle = tenant_of(data_dir, patron_environment, *UNLIMITED, name="idle")
    with serving(data_dir, "--no-worker", environment=patron_environment) as server:
        for n in range(3):
            assert push(server, tenant, [contact(2 * n), contact(2 * n + 1)]).status_code == 202
        samples = scrape(server)
        assert value(samples, "patron_queue_records", account=tenant.hash) == 6
        assert value(samples, "patron_queue_backlog_records") == 6
        assert value(samples, "patron_queue_oldest_age_seconds", account=tenant.hash) >= 0
        assert not present(samples, "patron_queue_records", account=idle.hash)
        assert not present(samples, "patron_worker_records_applied_total")

        environment = {
            **{k: v for k, v in os.environ.items() if k not in ("PATRON_DATABASE_URL", "PATRON_REDIS_URL")},
            **patron_environment,
            "PATRON_DATA_DIR": str(data_dir),
        }
        worker = subprocess.Popen([*PATRON, "worker", "--idle-poll", "0.2"], env=environment)
        try:

            def drained() -> Samples | None:
                samples = scrape(server)
                return samples if value(samples, "patron_queue_backlog_records") == 0 else None

            applied = eventually(drained, "the backlog applied, as /metrics says")
            eventually(
                lambda: value(scrape(server), "patron_worker_records_applied_total") == 6,
                "the worker's applied records in the server's /metrics",
            )
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        assert not present(applied, "patron_queue_records")
        assert not present(applied, "patron_queue_oldest_age_seconds")

    # A new server removes the files of the processes that have gone, and keeps those of a process
    # still running, even one that has only just created its file (still empty: no scrape fails on it).
    creating = data_dir / "metrics" / f"counter_{os.getpid()}.db"
    creating.touch()
    with serving(data_dir, "--no-worker", environment=patron_environment) as server:
        samples = scrape(server)
    assert value(samples, "patron_http_requests_total", **PUSH_ROUTE) == 0
    assert not present(samples, "patron_worker_records_applied_total")
    assert sorted(p.name for p in (data_dir / "metrics").glob("counter_*.db")) == sorted(
        [creating.name, f"counter_{server.process.pid}.db"]
    )
