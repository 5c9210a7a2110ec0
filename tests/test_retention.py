"""Retention (``patron.retention``), on both stores: what is older than its window is pruned and the
rest kept, queued rows never are, every reader of what was pruned still answers, two pruners at once
are harmless, SQLite gives the space back, webhook events delivered or failed go with their attempts
while pending ones stay, and bad settings are refused.

Rows are made old by pushing them, then moving their stored times into the past with SQL."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Table, func, select, update

from conftest import Tenant, eventually, push, run_cli
from patron.accounts import get_account, now
from patron.config import Retention, Settings
from patron.console import activity, reads
from patron.retention import Pruner
from patron.store import open_store
from patron.store.migrate import head_revision
from patron.store.schema import (
    accounts,
    import_batches,
    import_hours,
    push_errors,
    tracking_events,
    webhook_attempts,
    webhook_endpoints,
    webhook_events,
)
from patron.tracking import wire
from support.app import App, Client, running_app
from support.http import post, read
from support.receiver import receiver

DAY = Retention(applied_days=1, errors_days=1, events_days=1)


@pytest.fixture
def app(tmp_path: Path, new_database_url: Callable[[], str | None]) -> Iterator[App]:
    with running_app(tmp_path, new_database_url(), session_idle=1.0) as app:
        yield app


def account_id(app: App, tenant: Tenant) -> int:
    query = select(accounts.c.id).where(accounts.c.hash == tenant.hash)
    found: int = app.store.read_blocking(lambda conn: conn.execute(query).scalar_one())
    return found


def age(app: App, table: Table, column: str, ago: timedelta, *where: Any) -> None:
    """Move ``column`` of the rows of ``table`` matching ``where`` back by ``ago``."""
    c = table.c[column]

    def work(conn: Connection) -> None:  # in Python: SQLite keeps times as text
        for row_id, at in conn.execute(select(table.c.id, c).where(*where)).all():
            conn.execute(update(table).where(table.c.id == row_id).values({c: at - ago}))

    app.store.write_blocking(work)


def age_request(app: App, request_id: str, ago: timedelta) -> None:
    """A push request, its errors and the events it carried as if they happened ``ago`` earlier."""
    b = import_batches.c
    for column in ("received_at", "applied_at"):
        age(app, import_batches, column, ago, b.request_id == request_id, b[column].is_not(None))
    age(app, push_errors, "created_at", ago, push_errors.c.request_id == request_id)


def rows(app: App, table: Table, *where: Any) -> int:
    query = select(func.count()).select_from(table).where(*where)
    found: int = app.store.read_blocking(lambda conn: conn.execute(query).scalar_one())
    return found


def contacts(first: int, n: int, bad: int = 0) -> list[dict[str, Any]]:
    """``n`` contacts, and ``bad`` records that are refused (kept as push errors)."""
    good = [
        {"@type": "contact", "id": f"c{i}", "email": f"p{i}@example.com"} for i in range(first, first + n)
    ]
    return good + [{"@type": "contact", "id": f"bad{first}-{i}", "email": "not an email"} for i in range(bad)]


def beacon(client: Client, tenant: Tenant, kind: str, d: dict[str, Any], sid: str = "s1") -> None:
    event = {"cid": "visitor1", "sid": sid, "src": "|||||", "type": kind, "channel": "system", "d": d}
    answer = client.get(f"/track/v3/{tenant.hash}/event.gif", params={"data": wire.encode(event), "rnd": "a"})
    assert answer.status_code == 200


def test_what_is_older_than_its_window_goes_and_every_reader_still_answers(app: App) -> None:
    client, tenant = app.client, app.tenant()
    old = push(client, tenant, contacts(0, 3, bad=2))
    recent = push(client, tenant, contacts(3, 2, bad=1))
    beacon(client, tenant, "pageview", {"type": "homepage"})
    beacon(client, tenant, "identify", {"uiid": "p0@example.com", "profile": {"firstname": "Ann"}})
    beacon(client, tenant, "pageview", {"type": "basket"}, sid="s2")
    push(client, tenant, contacts(5, 1))  # a barrier: the beacons are applied
    ours = account_id(app, tenant)
    before = app.store.read_blocking(lambda conn: activity.records(conn, ours, now()))
    [profile] = read(client, tenant, "/v2/profiles?email=p0@example.com")
    assert profile["firstname"] == "Ann"  # from the tag

    # the old request, its errors and the first session's events were three days ago
    ago = timedelta(days=3)
    age_request(app, old["request_id"], ago)
    e = tracking_events.c
    age(app, tracking_events, "occurred_at", ago, e.account_id == ours, e.session_id == "s1")
    chart_then = app.store.read_blocking(lambda conn: activity.records(conn, ours, now()))
    assert sum(chart_then.series[0].values) == sum(before.series[0].values) == 6

    pruned = Pruner(app.store, DAY).prune()
    assert (pruned.batches, pruned.errors, pruned.events) == (1, 2, 1)  # the identify event stays

    # the old request is forgotten; the recent one is kept whole
    assert client.get(f"/v2/push/{old['request_id']}", headers=tenant.headers).status_code == 404
    assert read(client, tenant, f"/v2/push/{recent['request_id']}")["status"] == "applied"
    errors = read(client, tenant, "/v2/push/_errors")
    assert {error["request_id"] for error in errors} == {recent["request_id"]}
    kinds = app.store.read_blocking(
        lambda conn: sorted(conn.execute(select(e.kind).where(e.account_id == ours)).scalars())
    )
    assert kinds == ["identify", "pageview"]
    # the records themselves, the profile (its tag data included) and the chart are as they were
    assert read(client, tenant, "/v2/contacts/default/c0")["id"] == "c0"
    assert read(client, tenant, f"/v2/profiles/{profile['id']}")["firstname"] == "Ann"
    chart = app.store.read_blocking(lambda conn: activity.records(conn, ours, now()))
    assert chart.series == chart_then.series
    assert rows(app, import_hours, import_hours.c.account_id == ours) == 1
    overview = app.store.read_blocking(
        lambda conn: reads.overview(conn, get_account(conn, tenant.hash), now())
    )
    assert overview.last_push is not None and overview.rejected_24h == 1
    rebuilt = run_cli(app.data_dir, "profiles", "rebuild", environment=app.environment).stdout
    assert " 0 changed" in rebuilt, rebuilt


def test_a_merge_job_still_answers_once_its_queued_row_is_pruned(app: App) -> None:
    client, tenant = app.client, app.tenant()
    push(client, tenant, [{"@type": "contact", "id": "a", "customer_id": "C1", "email": "x@example.com"}])
    push(client, tenant, [{"@type": "contact", "id": "b", "customer_id": "C2", "email": "y@example.com"}])
    body = {
        "survivor": {"type": "customer_id", "value": "C1"},
        "customers_to_merge": [{"type": "customer_id", "value": "C2"}],
    }
    started = client.post("/v2/merge-profile", json=body, headers=tenant.headers)
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    push(client, tenant, contacts(0, 1))  # after the merge: the merge is applied, and not the newest row
    job = read(client, tenant, f"/v2/merge-profile/{job_id}")
    assert job["status"] == "completed"
    age_request(app, job_id, timedelta(days=3))
    job["timestamp_created"] = read(client, tenant, f"/v2/merge-profile/{job_id}")["timestamp_created"]

    assert Pruner(app.store, DAY).prune().batches == 1
    assert client.get(f"/v2/push/{job_id}", headers=tenant.headers).status_code == 404
    assert read(client, tenant, f"/v2/merge-profile/{job_id}") == job


def test_queued_rows_are_never_pruned_whatever_their_age(
    tmp_path: Path, new_database_url: Callable[[], str | None]
) -> None:
    with running_app(tmp_path, new_database_url(), run_worker=False) as app:
        client, tenant = app.client, app.tenant()
        queued = [push(client, tenant, contacts(i * 10, 2), wait=False) for i in range(3)]
        for reply in queued:
            age(
                app,
                import_batches,
                "received_at",
                timedelta(days=400),
                import_batches.c.request_id == reply["request_id"],
            )
        pruned = Pruner(app.store, DAY).prune()
        assert pruned.batches == 0
        for reply in queued:
            assert read(client, tenant, f"/v2/push/{reply['request_id']}")["status"] == "queued"


def test_the_newest_row_of_each_table_stays_and_a_second_pass_finds_nothing(app: App) -> None:
    client, tenant = app.client, app.tenant()
    first = push(client, tenant, contacts(0, 1, bad=1))
    last = push(client, tenant, contacts(1, 1, bad=1))
    for reply in (first, last):
        age_request(app, reply["request_id"], timedelta(days=30))
    pruner = Pruner(app.store, DAY)
    pruned = pruner.prune()
    assert (pruned.batches, pruned.errors) == (1, 1)
    assert read(client, tenant, f"/v2/push/{last['request_id']}")["status"] == "applied"
    assert len(read(client, tenant, "/v2/push/_errors")) == 1
    again = pruner.prune()
    assert (again.batches, again.errors, again.events, again.more) == (0, 0, 0, False)


def test_two_pruners_at_once_count_every_pruned_request_once(app: App) -> None:
    client, tenant = app.client, app.tenant()
    replies = [push(client, tenant, contacts(i * 10, 3, bad=1), wait=False) for i in range(40)]
    barrier = push(client, tenant, contacts(1000, 1))  # the newest row, which stays
    ours = account_id(app, tenant)
    b = import_batches.c
    for column in ("received_at", "applied_at"):
        age(
            app,
            import_batches,
            column,
            timedelta(days=3),
            b.account_id == ours,
            b.request_id != barrier["request_id"],
        )
    other = open_store(
        replace(Settings(), data_dir=app.data_dir, database_url=app.environment.get("PATRON_DATABASE_URL"))
    )
    other.start()
    done: list[int] = []

    def run(pruner: Pruner) -> None:
        total = 0
        while True:
            pruned = pruner.prune()
            total += pruned.batches
            if not pruned.more:
                break
        done.append(total)

    try:
        threads = [threading.Thread(target=run, args=(Pruner(s, DAY, pause=0),)) for s in (app.store, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        other.close()
    assert sum(done) == len(replies)
    h = import_hours.c
    totals = app.store.read_blocking(
        lambda conn: conn.execute(
            select(func.sum(h.requests), func.sum(h.accepted), func.sum(h.rejected)).where(
                h.account_id == ours
            )
        ).one()
    )
    assert tuple(totals) == (40, 120, 40)


def test_sqlite_gives_the_pruned_space_back_to_the_file_system(tmp_path: Path) -> None:
    with running_app(tmp_path, None) as app:  # SQLite (PostgreSQL's autovacuum reuses the space itself)
        client, tenant = app.client, app.tenant()
        big = "x" * 5000
        replies = [  # refused records, each kept whole as a push error
            push(
                client,
                tenant,
                [{"@type": "contact", "id": f"r{i}-{j}", "email": "no", "note": big} for j in range(100)],
            )
            for i in range(10)
        ]
        push(client, tenant, contacts(0, 1, bad=1))  # recent: the newest rows
        for reply in replies:
            assert reply["rejected"] == 100
            age_request(app, reply["request_id"], timedelta(days=3))
        app.store.purge()
        path = app.data_dir / "patron.db"
        assert _pragma(path, "auto_vacuum") == 2  # incremental, from the database's start
        pages_before, size_before = _pragma(path, "page_count"), path.stat().st_size
        pruned = Pruner(app.store, DAY).prune()
        assert pruned.errors == 1000 and pruned.pages > 0
        app.store.purge()  # a checkpoint: the file takes the size of its last commit
        assert _pragma(path, "freelist_count") == 0
        assert _pragma(path, "page_count") < pages_before - 500
        assert path.stat().st_size < size_before - 500 * 4096


def test_migrate_switches_an_older_sqlite_database_to_incremental_vacuum_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    run_cli(data_dir, "migrate")
    path = data_dir / "patron.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA auto_vacuum=NONE")
    db.execute("VACUUM")  # as a database made before incremental auto-vacuum
    db.close()
    assert _pragma(path, "auto_vacuum") == 0
    first = run_cli(data_dir, "migrate").stdout
    assert "switched to incremental auto-vacuum" in first
    assert _pragma(path, "auto_vacuum") == 2
    second = run_cli(data_dir, "migrate").stdout
    assert "auto-vacuum" not in second and f"database at revision {head_revision()}" in second


def test_webhook_events_delivered_or_failed_go_with_their_attempts_and_pending_ones_stay(
    tmp_path: Path, new_database_url: Callable[[], str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three endpoints get the events of two orders: one delivers both, one fails (its first event
    given up), one is disabled (its events kept, pending). The first order's events are made 40 days
    old; with 30 days' retention the delivered and the failed one go, with their attempts, and the
    rest stays: the delivery log and a replay see what remains."""
    with receiver(tmp_path / "receiver") as hooks:
        # the worker (a process of its own) delivers to the local receiver, and retries soon
        monkeypatch.setenv("PATRON_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8,::1/128")
        monkeypatch.setenv("PATRON_WEBHOOK_CA", str(hooks.ca))
        monkeypatch.setenv("PATRON_WEBHOOK_BACKOFF", "0.2")
        hooks.status["/down"] = 500
        with running_app(tmp_path, new_database_url()) as app:
            client, tenant = app.client, app.tenant()
            made = {}
            for name in ("ok", "down", "off"):
                body = {"url": hooks.url(f"/{name}"), "event_types": ["order.applied"]}
                response = post(client, tenant, body, "/v2/webhooks")
                assert response.status_code == 201, response.text
                made[name] = response.json()["id"]
            off = f"/v2/webhooks/{made['off']}"
            assert client.put(off, json={"enabled": False}, headers=tenant.headers).status_code == 200
            for n in (1, 2):
                push(client, tenant, [_order(f"o{n}", f"p{n}@example.com")])
            eventually(lambda: len(hooks.delivered("/ok")) == 2, "the deliveries")
            ep, e = webhook_endpoints.c, webhook_events.c

            def event(name: str, order_id: str) -> Any:
                """The row of the order's event to endpoint ``name``."""
                query = select(e.id).join(webhook_endpoints, ep.id == e.endpoint)
                query = query.where(ep.endpoint_id == made[name], e.payload.contains(f'"{order_id}"'))
                found: int = app.store.read_blocking(lambda conn: conn.execute(query).scalar_one())
                return e.id == found

            def status(where: Any) -> str:
                query = select(e.status).where(where)
                found: str = app.store.read_blocking(lambda conn: conn.execute(query).scalar_one())
                return found

            # the first order's event to the failing endpoint is given up: its retries ran out
            age(app, webhook_events, "retry_until", timedelta(days=4), event("down", "o1"))
            eventually(lambda: status(event("down", "o1")) == "failed", "the failed event")
            ago = timedelta(days=40)
            for name in ("ok", "down", "off"):
                for column in ("created_at", "next_attempt_at"):
                    age(app, webhook_events, column, ago, event(name, "o1"))
            age(app, webhook_events, "created_at", ago, event("down", "o2"))  # old, and still retried

            ids = {name: event(name, "o1").right.value for name in ("ok", "down")}

            def attempts(name: str) -> int:
                return rows(app, webhook_attempts, webhook_attempts.c.event == ids[name])

            assert attempts("ok") == 1 and attempts("down") >= 2
            pruner = Pruner(app.store, Retention(webhooks_days=30))
            assert pruner.prune().webhooks == 2
            assert rows(app, webhook_events, e.id.in_(ids.values())) == 0
            assert attempts("ok") == attempts("down") == 0
            assert (status(event("ok", "o2")), status(event("down", "o2"))) == ("delivered", "pending")
            assert status(event("off", "o1")) == status(event("off", "o2")) == "pending"  # kept for replay

            def log(name: str) -> list[dict[str, Any]]:
                found: list[dict[str, Any]] = read(client, tenant, f"/v2/webhooks/{made[name]}/deliveries")
                return found

            [kept] = log("ok")
            assert kept["event_status"] == "delivered" and kept["status_code"] == 200
            [o2] = [r for r in hooks.delivered("/ok") if b'"o2"' in r.body]
            assert kept["event_id"] == o2.headers["webhook-id"]
            assert {entry["event_status"] for entry in log("down")} == {"pending"}
            since = {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}
            replayed = post(client, tenant, since, f"/v2/webhooks/{made['ok']}/replay")
            assert replayed.json() == {"events": 1}  # replay reaches back as far as the retention
            assert pruner.prune().webhooks == 0


def _order(order_id: str, email: str) -> dict[str, Any]:
    return {
        "@type": "order",
        "id": order_id,
        "timestamp": "2024-01-02T10:00:00+00:00",
        "currency": "GBP",
        "grand_total": 10.0,
        "customer": {"email": email},
    }


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        *(("PATRON_RETAIN_APPLIED_DAYS", value) for value in ("0", "-3", "thirty", "1.5", "36501")),
        ("PATRON_RETAIN_ERRORS_DAYS", "0"),
        ("PATRON_RETAIN_EVENTS_DAYS", "never"),
        ("PATRON_RETAIN_WEBHOOKS_DAYS", "0"),
    ],
)
def test_a_bad_retention_is_refused_naming_its_variable(tmp_path: Path, variable: str, value: str) -> None:
    result = run_cli(tmp_path / "data", "worker", check=False, environment={variable: value})
    assert result.returncode == 2, result
    assert variable in result.stderr and "whole number of days" in result.stderr
    assert not (tmp_path / "data").exists()  # nothing was made


def _pragma(path: Path, name: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        db.close()
