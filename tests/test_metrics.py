"""``GET /metrics`` of a real ``patron serve``: the counters of every process of the host summed on
every scrape (two API processes, the worker it starts, a ``patron worker`` run by hand), and the
operator's metrics (the queue per account, records applied, rejects by reason, 429s by endpoint
class, beacons, the outbox, webhook deliveries to a real HTTPS receiver, the database's size), on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, select, update

from conftest import PATRON, Server, Tenant, create_tenant_cli, eventually, run_cli, set_limits, start_server
from patron.config import Settings
from patron.store import open_store
from patron.store.schema import webhook_endpoints, webhook_events
from patron.tracking import wire
from support.receiver import receiver

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


def test_webhook_deliveries_show_by_outcome_with_their_latency_disabled_endpoints_and_the_pending(
    tmp_path: Path, patron_environment: dict[str, str]
) -> None:
    """Four endpoints of a real HTTPS receiver, behind a real ``patron serve``: one answers 200, one
    503 until a first attempt has failed, one has events whose retries have run out, and one points
    at an address outside the networks allowed (refused at delivery, disabled after four attempts,
    its events kept pending). Every attempt shows in /metrics by its outcome."""
    with receiver(tmp_path / "receiver") as hooks:
        environment = {
            **patron_environment,
            "PATRON_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8,::1/128",
            "PATRON_WEBHOOK_CA": str(hooks.ca),
            "PATRON_WEBHOOK_BACKOFF": "0.2",
            "PATRON_WEBHOOK_DISABLE_AFTER": "4",
        }
        data_dir = tmp_path / "data"
        tenant = tenant_of(data_dir, environment, *UNLIMITED)
        made = {}
        for name, url in (
            ("ok", hooks.url("/ok")),
            ("flaky", hooks.url("/flaky")),
            ("down", hooks.url("/down")),
            ("elsewhere", f"https://127.0.0.2:{hooks.port}/elsewhere"),  # allowed now, not when delivered
        ):
            # one attempt at a time: the endpoints' attempts are counted exactly
            command = ["webhooks", "create", "--account", tenant.hash, "--url", url, "--max-concurrency", "1"]
            created = run_cli(
                data_dir, *command, "--event-type", "order.applied", "--json", environment=environment
            )
            made[name] = json.loads(created.stdout)["id"]
        account = ["--account", tenant.hash, "--id", made["down"]]
        run_cli(data_dir, "webhooks", "disable", *account, environment=environment)
        hooks.status["/flaky"] = 503
        hooks.status["/down"] = 500
        serve = {**environment, "PATRON_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32,::1/128"}
        with serving(data_dir, environment=serve) as server:
            for n in range(3):
                assert push(server, tenant, [order(f"o{n}")]).status_code == 202
            eventually(lambda: hooks.requests("/flaky"), "a failed attempt")
            hooks.status.pop("/flaky")
            # the disabled endpoint's events: their retries have run out (their three days are past)
            store = open_store(
                replace(Settings(), data_dir=data_dir, database_url=environment.get("PATRON_DATABASE_URL"))
            )
            store.start()
            try:
                eventually(lambda: _pending(store, made["down"]) == 3, "the kept events")
                store.write_blocking(lambda conn: _expire(conn, made["down"]))
            finally:
                store.close()
            run_cli(data_dir, "webhooks", "enable", *account, environment=environment)

            def settled() -> Samples | None:
                samples = scrape(server)
                done = (
                    len(hooks.delivered("/ok")) == len(hooks.delivered("/flaky")) == 3
                    and len(hooks.requests("/down")) == 3
                    and value(samples, "patron_webhook_endpoints_disabled_total") == 1
                    and value(samples, "patron_webhook_attempts_total")
                    == 3 + len(hooks.requests("/flaky")) + 3 + 4
                    and value(samples, "patron_webhook_events_pending") == 3
                )
                return samples if done else None

            samples = eventually(settled, "every attempt, as /metrics says", 60)
    retried = len([r for r in hooks.requests("/flaky") if r.answered == 503])
    assert retried >= 1
    assert value(samples, "patron_webhook_attempts_total", outcome="delivered") == 6
    assert value(samples, "patron_webhook_attempts_total", outcome="retrying") == retried
    assert value(samples, "patron_webhook_attempts_total", outcome="given_up") == 3
    assert value(samples, "patron_webhook_attempts_total", outcome="refused") == 4
    assert hooks.requests("/elsewhere") == []  # refused: nothing sent
    attempts = value(samples, "patron_webhook_attempts_total")
    assert value(samples, "patron_webhook_attempt_duration_seconds_count") == attempts
    assert value(samples, "patron_webhook_attempt_duration_seconds_bucket", le="+Inf") == attempts
    assert value(samples, "patron_webhook_attempt_duration_seconds_sum") > 0


def order(order_id: str) -> dict[str, Any]:
    return {
        "@type": "order",
        "id": order_id,
        "timestamp": "2024-01-02T10:00:00+00:00",
        "currency": "GBP",
        "grand_total": 10.0,
        "customer": {"email": f"{order_id}@example.com"},
    }


def _of(endpoint_id: str) -> Any:
    e, p = webhook_events.c, webhook_endpoints.c
    return e.endpoint == select(p.id).where(p.endpoint_id == endpoint_id).scalar_subquery()


def _pending(store: Any, endpoint_id: str) -> int:
    query = select(webhook_events.c.id).where(_of(endpoint_id), webhook_events.c.status == "pending")
    return len(store.read_blocking(lambda conn: conn.execute(query).all()))


def _expire(conn: Connection, endpoint_id: str) -> None:
    e = webhook_events.c
    for row_id, until in conn.execute(select(e.id, e.retry_until).where(_of(endpoint_id))).all():
        conn.execute(
            update(webhook_events).where(e.id == row_id).values(retry_until=until - timedelta(days=4))
        )
