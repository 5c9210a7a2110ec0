"""The SQLite store: durable group commit, isolation between units of work, readers, migrations."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, column, func, insert, select, table, text

from patron.accounts import now
from patron.config import Settings
from patron.store import Store, StoreUnavailable, open_store
from patron.store.migrate import current_revision, head_revision
from patron.store.schema import accounts, metadata
from patron.store.sqlite import SQLiteStore


@pytest.fixture
def new_database_url() -> Callable[[], str | None]:
    """These tests are about the SQLite store itself."""
    return lambda: None


def _insert(n: int):  # type: ignore[no-untyped-def]
    def work(conn: Connection) -> int:
        conn.execute(
            insert(accounts).values(
                hash=f"{n:016x}", name=f"a{n}", environment="staging", limits={}, created_at=now()
            )
        )
        return n

    return work


def _count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(accounts)).scalar_one())


def test_concurrent_writes_are_group_committed_and_all_durable(store: Store, settings: Settings) -> None:
    assert isinstance(store, SQLiteStore)
    commits_before = store.commits

    async def many() -> list[int]:
        return await asyncio.gather(*(store.write(_insert(n)) for n in range(400)))

    assert sorted(asyncio.run(many())) == list(range(400))
    assert store.committed_writes >= 400
    assert store.commits - commits_before < 400  # many requests shared a commit
    # Durable and visible to an independent connection once the writes returned.
    db = sqlite3.connect(settings.data_dir / "patron.db")
    assert db.execute("select count(*) from accounts").fetchone()[0] == 400
    db.close()


def test_a_failing_unit_of_work_does_not_undo_its_neighbours(store: Store) -> None:
    def boom(conn: Connection) -> None:
        _insert(10_000)(conn)
        raise ValueError("this unit fails after writing")

    async def mixed() -> list[object]:
        return await asyncio.gather(
            store.write(_insert(1)), store.write(boom), store.write(_insert(2)), return_exceptions=True
        )

    results = asyncio.run(mixed())
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], ValueError)
    assert store.read_blocking(_count) == 2  # the failing unit's own insert was rolled back


def test_readers_are_read_only(store: Store) -> None:
    with pytest.raises(StoreUnavailable):
        store.read_blocking(lambda conn: conn.execute(text("delete from accounts")))


def test_writes_after_close_are_refused(settings: Settings) -> None:
    store = open_store(settings)
    store.start()
    store.close()
    with pytest.raises(StoreUnavailable):
        store.write_blocking(_insert(1))


def test_database_is_wal_with_full_sync(store: Store, settings: Settings) -> None:
    assert store.read_blocking(lambda c: c.exec_driver_sql("PRAGMA journal_mode").scalar()) == "wal"
    assert store.read_blocking(lambda c: c.exec_driver_sql("PRAGMA synchronous").scalar()) == 2  # FULL


def test_migrations_match_the_schema_exactly(store: Store) -> None:
    def diff(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    assert store.read_blocking(diff) == []
    assert store.read_blocking(current_revision) == head_revision()


def test_each_migration_is_numbered_by_its_file_after_the_one_before() -> None:
    """The head and a database's revision are read without Alembic (``patron.store.migrate``): that
    holds while each script's revision is its file's number and follows the one before."""
    from alembic.script import ScriptDirectory

    from patron.store.migrate import VERSIONS, _config

    scripts = ScriptDirectory.from_config(_config())
    by_revision = {script.revision: script for script in scripts.walk_revisions()}
    numbers = sorted(path.name[:4] for path in VERSIONS.glob("*.py") if path.name[0].isdigit())
    assert sorted(by_revision) == numbers
    for before, number in zip([None, *numbers], numbers, strict=False):
        assert by_revision[number].down_revision == before
    assert scripts.get_current_head() == head_revision() == numbers[-1]


def test_an_older_sqlite_database_is_upgraded_when_the_store_starts(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    from patron.store.migrate import _config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(_config(conn), "0023")
        assert current_revision(conn) == "0023"
    engine.dispose()
    store = SQLiteStore(url)
    store.start()
    try:
        assert store.read_blocking(current_revision) == head_revision()
        tables = store.read_blocking(lambda c: c.exec_driver_sql("PRAGMA index_list(webhook_events)").all())
        assert "ix_webhook_events_endpoint_due" in {row[1] for row in tables}  # made by 0024
    finally:
        store.close()


def test_start_is_idempotent_and_reopening_keeps_data(settings: Settings, tmp_path: Path) -> None:
    store = open_store(settings)
    store.start()
    store.start()
    store.write_blocking(_insert(7))
    store.close()
    again = open_store(settings)
    again.start()
    assert again.read_blocking(_count) == 1
    again.close()


def test_entities_stored_before_their_numbering_are_numbered_by_the_upgrade(tmp_path: Path) -> None:
    """Migration 0009 numbers each account's existing entities in creation order; the worker goes on
    from there, and a deep page reads the same rows either way."""
    from alembic import command
    from sqlalchemy import create_engine

    from patron.store.migrate import _config

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        command.upgrade(_config(conn), "0008")
        for n in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO accounts (id, hash, name, environment, limits, created_at)"
                    " VALUES (:n, :h, 'a', 'staging', '{}', '2026-01-01 00:00:00')"
                ),
                {"n": n, "h": f"{n:016x}"},
            )
        for i, account in enumerate([1, 2, 1, 1, 2]):
            conn.execute(
                text(
                    "INSERT INTO orders (account_id, order_id, data, created_at, updated_at, counted,"
                    " revenue, items) VALUES (:a, :o, '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00',"
                    " 1, 0, 0)"
                ),
                {"a": account, "o": f"o{i}"},
            )
    with engine.begin() as conn:
        command.upgrade(_config(conn), "head")
        numbered = conn.execute(text("SELECT account_id, order_id, seq FROM orders ORDER BY id")).all()
    assert [tuple(row) for row in numbered] == [
        (1, "o0", 1),
        (2, "o1", 1),
        (1, "o2", 2),
        (1, "o3", 3),
        (2, "o4", 2),
    ]


def test_records_stored_before_their_defects_were_kept_get_them_from_the_upgrade(tmp_path: Path) -> None:
    """Migration 0012 finds the defects of the records stored before it, and the orders' currency."""
    from alembic import command
    from sqlalchemy import create_engine

    from patron.store.migrate import _config

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    at = {"at": "2026-01-01 00:00:00"}
    bad = {
        "id": "o-1",
        "currency": "EUR",
        "subtotal": 20,
        "grand_total": 99,
        "lineitems": [{"product_id": "p-9"}],
    }
    good = {
        "id": "o-2",
        "currency": "GBP",
        "subtotal": 20,
        "grand_total": 20,
        "customer": {"id": "c"},
        "totals": {"base": {"grand_total": 20}},
        "lineitems": [{"product_id": "p-1"}],
    }
    with engine.begin() as conn:
        command.upgrade(_config(conn), "0011")
        conn.execute(
            text(
                "INSERT INTO accounts (id, hash, name, environment, limits, created_at)"
                " VALUES (1, '0000000000000001', 'a', 'staging', '{}', :at)"
            ),
            at,
        )
        conn.execute(
            text(
                "INSERT INTO products (account_id, product_id, data, created_at, updated_at, seq)"
                " VALUES (1, 'p-1', '{}', :at, :at, 1)"
            ),
            at,
        )
        for n, doc in enumerate((bad, good), start=1):
            conn.execute(
                text(
                    "INSERT INTO orders (account_id, order_id, data, created_at, updated_at, counted,"
                    " revenue, items, seq) VALUES (1, :o, :d, :at, :at, 1, 0, 0, :n)"
                ),
                {"o": doc["id"], "d": json.dumps(doc), "n": n, **at},
            )
    with engine.begin() as conn:
        command.upgrade(_config(conn), "head")
        orders = conn.execute(text("SELECT order_id, currency, base_totals FROM orders ORDER BY id")).all()
        flags = conn.execute(
            text(
                "SELECT o.order_id, f.rule, f.ref FROM order_flags f"
                " JOIN orders o ON o.id = f.row_id ORDER BY f.id"
            )
        ).all()
        product = conn.execute(text("SELECT rule FROM product_flags ORDER BY id")).scalars().all()
    assert [tuple(row) for row in orders] == [("o-1", "EUR", 0), ("o-2", "GBP", 1)]
    assert sorted(tuple(row) for row in flags) == [
        ("o-1", "orders.grand_total_mismatch", None),
        ("o-1", "orders.no_customer", None),
        ("o-1", "orders.unknown_product", "p-9"),
    ]
    assert product == ["products.missing_fields"]


def test_profiles_stored_before_their_typed_columns_get_them_from_the_upgrade(tmp_path: Path) -> None:
    """Migration 0022 copies each profile document's stats, country, consent and dates into the typed
    columns, the values the worker writes for the same document."""
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import create_engine

    from patron.profiles import build
    from patron.store.migrate import _config

    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    facts = build.Facts(
        profile_id="p-1",
        created_at=at,
        contacts=[build.Contact((at, 1), {"email": "a@example.com", "country_id": "GB"})],
        stats=build.OrderStats(3, 2, 42.5, 7, "2025-01-01T10:00:00+00:00", "2025-06-01T10:00:00+00:00"),
        identities=[("email", "a@example.com")],
        lists=[],
        consent={"email": ("subscribed", at), "sms": ("pending", at)},
    )
    doc = build.document(facts)
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        command.upgrade(_config(conn), "0021")
        conn.execute(
            text(
                "INSERT INTO accounts (id, hash, name, environment, limits, created_at)"
                " VALUES (1, '0000000000000001', 'a', 'staging', '{}', '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO profiles (account_id, profile_id, data, created_at, updated_at)"
                " VALUES (1, 'p-1', :d, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            ),
            {"d": msgspec.json.encode(doc).decode()},
        )
    columns = list(build.TYPED.values())
    with engine.begin() as conn:
        command.upgrade(_config(conn), "head")
        row = conn.execute(select(*(column(name) for name in columns)).select_from(table("profiles"))).one()
    found = dict(zip(columns, row, strict=True))
    expected = build.typed(doc)
    assert found == {**expected, "marketing_optin": 1}
    assert expected["orders"] == 2 and expected["revenue"] == 42.5 and expected["country_id"] == "GB"
    assert expected["last_purchase"] == "2025-06-01T10:00:00+00:00" and expected["sms_status"] == "pending"
