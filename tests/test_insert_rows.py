"""``store.insert_rows``: the worker's hottest inserts by the driver's executemany, on SQLite and
PostgreSQL: what is read back is what was given, and a value that needs converting is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, select

from patron import accounts
from patron.store import Store, insert_rows
from patron.store.schema import segment_changes

AT = datetime(2026, 12, 6, 10, 30, 15, 123456, tzinfo=UTC)
ROWS = [(7, "6927-a0c4e2-4aaf58", "segment_enter"), (7, 'it\'s "quoted" ✓', "segment_exit"), (8, "", "x")]


def _read(conn: Connection) -> list[tuple[object, ...]]:
    c = segment_changes.c
    query = select(c.account_id, c.created_at, c.segment_id, c.profile, c.event).order_by(c.id)
    return [tuple(row) for row in conn.execute(query)]


def _account(store: Store) -> int:
    account, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "shop", "staging"))
    return account.id


def test_rows_are_read_back_as_given_with_the_fixed_values_converted(store: Store) -> None:
    account_id = _account(store)

    def write(conn: Connection) -> None:
        fixed = {"account_id": account_id, "created_at": AT}
        insert_rows(conn, segment_changes, fixed, ("segment_id", "profile", "event"), ROWS)
        insert_rows(conn, segment_changes, fixed, ("segment_id", "profile", "event"), [])

    store.write_blocking(write)
    assert store.read_blocking(_read) == [(account_id, AT, *row) for row in ROWS]


def test_a_column_that_needs_converting_is_refused_and_nothing_is_written(store: Store) -> None:
    account_id = _account(store)

    def write(conn: Connection) -> None:
        fixed = {"account_id": account_id, "segment_id": 7}
        insert_rows(conn, segment_changes, fixed, ("profile", "event", "created_at"), [("p", "e", AT)])

    with pytest.raises(TypeError, match=r"segment_changes\.created_at"):
        store.write_blocking(write)
    assert store.read_blocking(_read) == []
