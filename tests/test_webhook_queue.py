"""The webhooks' queue through the Python API, on SQLite and PostgreSQL: only the first undelivered
event of each profile and endpoint is pending (the others wait), so a claim reads a few due events of
each enabled endpoint through an index whatever an outage or a disabled endpoint left behind; the
next event is pending as soon as the one before it is delivered or failed, after a merge, and after a
replay (docs/webhooks.md)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import JSON, Connection, bindparam, select, text, update

from patron import accounts, replays
from patron.config import Settings, Webhooks
from patron.ingest.worker import apply_round
from patron.runtime import queue_kinds
from patron.store import Store, open_store
from patron.store.schema import UTCDateTime, webhook_endpoints, webhook_events
from patron.webhooks import delivery, endpoints, outbox

SETTINGS = Webhooks(allow_networks=(), ca_files=(), backoff=1.0, lease=60.0, disable_after=100)
LEASE = timedelta(seconds=SETTINGS.lease)
OK = delivery.Outcome(200, 5, None, "ok")
DOWN = delivery.Outcome(503, 5, "HTTP 503", "busy")


def turn(
    store: Store, finished: list[tuple[delivery.Claimed, delivery.Outcome]], at: datetime, free: int
) -> list[delivery.Claimed]:
    """One write of the deliverer: the outbox fanned out, ``finished`` recorded, ``free`` claimed."""
    return store.write_blocking(lambda conn: delivery.turn(conn, finished, at, LEASE, free, SETTINGS))[1]


def account_with_endpoint(store: Store, name: str = "shop") -> tuple[int, str]:
    def seed(conn: Connection) -> tuple[int, str]:
        account, _ = accounts.create_account(conn, name, "staging")
        body = endpoints.NewEndpoint(url=f"https://{name}.example.com/hooks", event_types=["order.applied"])
        return account.id, endpoints.create(conn, account.id, body, body.url, accounts.now()).id

    return store.write_blocking(seed)


def emit(store: Store, account_id: int, *profiles: str | None) -> None:
    """An ``order.applied`` about each profile, in turn (``o0``, ``o1``, ...)."""

    def write(conn: Connection) -> None:
        for n, profile in enumerate(profiles):
            data = {"order_id": f"o{n}"}
            outbox.emit(conn, account_id, "order.applied", data, accounts.now(), profile=profile)

    store.write_blocking(write)


def statuses(store: Store, account_id: int) -> list[tuple[str, str | None, str]]:
    """(order id, profile, status) of the account's events, in the order they were written."""
    e = webhook_events.c

    def read(conn: Connection) -> list[tuple[str, str | None, str]]:
        rows = conn.execute(select(e.payload, e.profile, e.status).where(e.account_id == account_id))
        found = [
            (row.payload.split('"order_id":"')[1].split('"')[0], row.profile, row.status) for row in rows
        ]
        return sorted(found, key=lambda row: int(row[0][1:]))

    return store.read_blocking(read)


def orders(claimed: list[delivery.Claimed]) -> list[str]:
    return sorted(c.payload.split('"order_id":"')[1].split('"')[0] for c in claimed)


def test_the_next_event_of_a_profile_is_pending_once_the_one_before_is_delivered_or_failed(
    store: Store,
) -> None:
    account_id, _ = account_with_endpoint(store)
    emit(store, account_id, "p1", "p1", "p2", "p2", None, None)
    now = accounts.now()
    claimed = turn(store, [], now, 10)
    assert orders(claimed) == ["o0", "o2", "o4", "o5"]  # the first of each profile, and those of none
    assert statuses(store, account_id) == [
        ("o0", "p1", "pending"),
        ("o1", "p1", "waiting"),
        ("o2", "p2", "pending"),
        ("o3", "p2", "waiting"),
        ("o4", None, "pending"),
        ("o5", None, "pending"),
    ]
    assert store.read_blocking(outbox.pending) == 6  # waiting ones are pending to the gauge
    # o0 delivered: o1 is claimed in the same write; o2 retried: o3 still waits
    by_order = dict(zip(orders(claimed), sorted(claimed, key=lambda c: c.id), strict=True))
    again = turn(store, [(by_order["o0"], OK), (by_order["o2"], DOWN)], now, 10)
    assert orders(again) == ["o1"]
    assert [status for _, _, status in statuses(store, account_id)[:4]] == [
        "delivered",
        "pending",
        "pending",
        "waiting",
    ]
    # o2 given up (its retry window over; its endpoint is disabled by it): o3 is next
    later = now + timedelta(days=4)
    [o2] = [c for c in turn(store, [], later, 10) if c.id == by_order["o2"].id]
    turn(store, [(o2, DOWN)], later, 0)
    assert statuses(store, account_id)[2:4] == [("o2", "p2", "failed"), ("o3", "p2", "pending")]


def test_a_claim_passes_over_an_outage_and_a_disabled_endpoint_without_reading_them(
    store: Store, tmp_path: Path
) -> None:
    """One account's endpoint in an outage (each profile's first event waiting for its retry, the
    rest behind it) and another's disabled with due events: a third account's event is claimed, and
    on SQLite no statement of the claim scans the events (each reads them through an index; the
    attempts under way, from the index of the leased ones)."""
    down, _ = account_with_endpoint(store, "down")
    off, off_endpoint = account_with_endpoint(store, "off")
    up, _ = account_with_endpoint(store, "up")
    emit(store, down, *[f"p{n % 5}" for n in range(40)])
    emit(store, off, *[f"q{n}" for n in range(20)])
    now = accounts.now()
    turn(store, [], now, 0)  # fanned out: the first event of each profile pending, the rest waiting
    e, p = webhook_events.c, webhook_endpoints.c

    def outage(conn: Connection) -> None:
        retry = now + timedelta(hours=1)
        conn.execute(update(webhook_events).where(e.account_id == down).values(next_attempt_at=retry))
        conn.execute(update(webhook_endpoints).where(p.endpoint_id == off_endpoint).values(enabled=False))

    store.write_blocking(outage)
    emit(store, up, "r1")
    statements: list[str] = []

    def claim(conn: Connection) -> list[delivery.Claimed]:
        driver = conn.connection.driver_connection
        if isinstance(driver, sqlite3.Connection):
            driver.set_trace_callback(statements.append)
        try:
            return delivery.turn(conn, [], accounts.now(), LEASE, 10, SETTINGS)[1]
        finally:
            if isinstance(driver, sqlite3.Connection):
                driver.set_trace_callback(None)

    claimed = store.write_blocking(claim)
    assert [c.account_id for c in claimed] == [up]
    if statements:  # SQLite: every statement's plan reads the events through an index
        reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "webhook_events" in s]
        assert reads
        for statement in reads:
            plan = store.read_blocking(
                lambda conn, s=statement: conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {s}").all()
            )
            # (the attempts under way are read from a partial index of the leased events alone)
            scans = [row[-1] for row in plan if "SCAN webhook_events" in row[-1] and "_leased" not in row[-1]]
            assert not scans, (statement, plan)


def test_a_merge_leaves_one_pending_event_per_endpoint_the_earliest(store: Store) -> None:
    account_id, _ = account_with_endpoint(store)
    emit(store, account_id, "merged", "survivor", "merged", "survivor")
    turn(store, [], accounts.now(), 0)  # fanned out: each profile's first pending
    store.write_blocking(lambda conn: outbox.moved(conn, account_id, "merged", "survivor"))
    assert statuses(store, account_id) == [
        ("o0", "survivor", "pending"),
        ("o1", "survivor", "waiting"),
        ("o2", "survivor", "waiting"),
        ("o3", "survivor", "waiting"),
    ]
    assert orders(turn(store, [], accounts.now(), 10)) == ["o0"]


def replayed(store: Store, account_id: int, endpoint_id: str, now: datetime) -> int:
    """A replay of the last and next hour's events, asked for and applied by the worker's rounds."""
    since, until = now - timedelta(hours=1), now + timedelta(hours=1)
    count = store.write_blocking(
        lambda conn: replays.replay(conn, account_id, endpoint_id, since, until, now)
    )
    while apply_round(store, queue_kinds()):
        pass
    return count


def delivered_all(store: Store, now: datetime) -> None:
    claimed = turn(store, [], now, 10)
    while claimed:  # everything delivered, each profile's events in turn
        claimed = turn(store, [(c, OK) for c in claimed], now, 10)


def test_a_replay_sends_each_profiles_events_again_in_turn(store: Store) -> None:
    account_id, endpoint_id = account_with_endpoint(store)
    emit(store, account_id, "p1", "p1", "p2", None)
    now = accounts.now()
    delivered_all(store, now)
    assert {status for _, _, status in statuses(store, account_id)} == {"delivered"}
    assert replayed(store, account_id, endpoint_id, now) == 4
    assert statuses(store, account_id) == [
        ("o0", "p1", "pending"),
        ("o1", "p1", "waiting"),
        ("o2", "p2", "pending"),
        ("o3", None, "pending"),
    ]
    # the delivery log shows a replayed event waiting for its turn as pending
    log = store.read_blocking(lambda conn: endpoints.attempts(conn, account_id, endpoint_id, 20, 0))
    assert len(log) == 4 and {a.event_status for a in log} == {"pending"}
    assert orders(turn(store, [], now, 10)) == ["o0", "o2", "o3"]


def test_a_replay_goes_in_bounded_steps_each_a_round_of_its_own(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven events replayed two at a time: four steps, every event sent again, each profile's in
    turn, and a step that reaches an event already pending again leaves one pending per profile."""
    monkeypatch.setattr(endpoints, "REPLAY_STEP", 2)
    account_id, endpoint_id = account_with_endpoint(store)
    emit(store, account_id, "p1", "p2", "p1", "p2", "p1", None, "p2")
    now = accounts.now()
    delivered_all(store, now)
    steps: list[int] = []
    real = endpoints.replay_step

    def counted(conn: Connection, account: int, job: endpoints.Replaying) -> endpoints.Replaying | None:
        steps.append(job.after_id)
        return real(conn, account, job)

    monkeypatch.setattr(endpoints, "replay_step", counted)
    assert replayed(store, account_id, endpoint_id, now) == 7
    assert len(steps) == 4 and steps[0] == 0 and steps == sorted(steps)
    assert statuses(store, account_id) == [
        ("o0", "p1", "pending"),
        ("o1", "p2", "pending"),
        ("o2", "p1", "waiting"),
        ("o3", "p2", "waiting"),
        ("o4", "p1", "waiting"),
        ("o5", None, "pending"),
        ("o6", "p2", "waiting"),
    ]
    sent = []
    claimed = turn(store, [], now, 10)
    while claimed:
        sent += orders(claimed)
        claimed = turn(store, [(c, OK) for c in claimed], now, 10)
    assert sorted(sent) == [f"o{n}" for n in range(7)]
    assert [o for o in sent if o in ("o0", "o2", "o4")] == ["o0", "o2", "o4"]  # p1's in order
    assert [o for o in sent if o in ("o1", "o3", "o6")] == ["o1", "o3", "o6"]  # p2's in order


#: Typed parameters of the older schemas' rows (PostgreSQL takes no text for a time or JSON).
_AT = bindparam("at", datetime(2026, 1, 1, tzinfo=UTC), type_=UTCDateTime())


def _account_and_endpoint(conn: Connection, event_types: list[str]) -> None:
    """Account 1 and its endpoint 1, written as an older schema holds them."""
    conn.execute(
        text(
            "INSERT INTO accounts (id, hash, name, environment, limits, created_at)"
            " VALUES (1, '0000000000000001', 'a', 'staging', '{}', :at)"
        ).bindparams(_AT)
    )
    conn.execute(
        text(
            "INSERT INTO webhook_endpoints (id, account_id, endpoint_id, url, event_types, secret,"
            " enabled, max_concurrency, failures, created_at, updated_at) VALUES"
            " (1, 1, 'ep_1', 'https://a.example.com/', :types, 'whsec_x', true, 4, 0, :at, :at)"
        ).bindparams(_AT, bindparam("types", event_types, type_=JSON())),
    )


def test_events_stored_before_the_queue_had_waiting_events_wait_after_the_upgrade(tmp_path: Path) -> None:
    """Migration 0024: of a profile's pending events for an endpoint, all but the first wait."""
    from alembic import command
    from sqlalchemy import create_engine

    from patron.store.migrate import _config

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        command.upgrade(_config(conn), "0023")
        _account_and_endpoint(conn, [])
        for n, (profile, status) in enumerate(
            [
                ("p1", "delivered"),
                ("p1", "pending"),
                ("p1", "pending"),
                ("p2", "pending"),
                (None, "pending"),
                (None, "pending"),
            ]
        ):
            conn.execute(
                text(
                    "INSERT INTO webhook_events (account_id, endpoint, event_id, type, profile, payload,"
                    " status, attempts, next_attempt_at, retry_until, created_at) VALUES"
                    " (1, 1, :id, 'order.applied', :profile, '{}', :status, 0, :at, :at, :at)"
                ).bindparams(_AT),
                {"id": f"msg_{n}", "profile": profile, "status": status},
            )
    with engine.begin() as conn:
        command.upgrade(_config(conn), "head")
        found = conn.execute(text("SELECT event_id, status FROM webhook_events ORDER BY id")).all()
    assert [tuple(row) for row in found] == [
        ("msg_0", "delivered"),
        ("msg_1", "pending"),
        ("msg_2", "waiting"),
        ("msg_3", "pending"),
        ("msg_4", "pending"),
        ("msg_5", "pending"),
    ]


def test_events_in_the_outbox_before_its_rows_held_several_are_delivered_as_they_were(
    settings: Settings,
) -> None:
    """Migration 0027: each event waiting in the outbox becomes a row of one event, fanned out with its
    webhook-id and body as they were written."""
    from alembic import command
    from sqlalchemy import create_engine, make_url

    from patron.store.migrate import _config

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.database_url is None:
        url = f"sqlite:///{settings.data_dir / 'patron.db'}"
    else:
        url = make_url(settings.database_url).set(drivername="postgresql+psycopg").render_as_string(False)
    engine = create_engine(url)
    bodies = {
        "msg_a": (
            "p1",
            '{"type":"order.applied","timestamp":"2026-01-01T00:00:00+00:00","data":{"order_id":"o1"}}',
        ),
        "msg_b": (
            None,
            '{"type":"order.applied","timestamp":"2026-01-01T00:00:00+00:00","data":{"order_id":"o2"}}',
        ),
    }
    with engine.begin() as conn:
        # (a PostgreSQL database of the tests is made at the head: taken back to 0026)
        command.upgrade(_config(conn), "0026")
        command.downgrade(_config(conn), "0026")
        _account_and_endpoint(conn, ["order.applied"])
        for event_id, (profile, body) in bodies.items():
            conn.execute(
                text(
                    "INSERT INTO webhook_outbox (account_id, event_id, type, profile, payload, created_at)"
                    " VALUES (1, :id, 'order.applied', :profile, :body, :at)"
                ).bindparams(_AT),
                {"id": event_id, "profile": profile, "body": body},
            )
    with engine.begin() as conn:
        command.upgrade(_config(conn), "head")
    engine.dispose()
    store = open_store(settings)
    store.start()
    try:
        assert store.read_blocking(outbox.pending) == 2
        claimed = turn(store, [], accounts.now(), 10)
        assert {c.event_id: c.payload for c in claimed} == {
            event_id: body for event_id, (_, body) in bodies.items()
        }
        assert statuses(store, 1) == [("o1", "p1", "pending"), ("o2", None, "pending")]
    finally:
        store.close()
