"""``store.among``: ``column IN values`` with the values as one parameter, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select

from patron.accounts import now
from patron.store import Store, among
from patron.store.schema import accounts

NAMES = ["plain", "it's quoted", 'a "double" one', "back\\slash", "ünïcödé ✓", "", "[1, 2]", "null"]


def _seed(conn: Connection) -> None:
    rows = [
        {"hash": f"{n:016x}", "name": name, "environment": "staging", "limits": {}, "created_at": now()}
        for n, name in enumerate(NAMES)
    ]
    conn.execute(insert(accounts), rows)


def _names(values: list[str]):  # type: ignore[no-untyped-def]
    def work(conn: Connection) -> list[str]:
        query = select(accounts.c.name).where(among(conn, accounts.c.name, values))
        return sorted(conn.execute(query).scalars())

    return work


def test_text_values_match_exactly_whatever_they_hold(store: Store) -> None:
    store.write_blocking(_seed)
    assert store.read_blocking(_names(NAMES)) == sorted(NAMES)
    assert store.read_blocking(_names(["it's quoted", "ünïcödé ✓", "absent"])) == ["it's quoted", "ünïcödé ✓"]
    assert store.read_blocking(_names(["PLAIN", "plain "])) == []  # exact, not case- or space-folded


def test_no_values_match_nothing(store: Store) -> None:
    store.write_blocking(_seed)
    assert store.read_blocking(_names([])) == []


def test_integers_and_more_values_than_a_statement_may_have_parameters(store: Store) -> None:
    """Beyond SQLite's 32,766 and PostgreSQL's 65,535 bound parameters: the values are one."""
    store.write_blocking(_seed)
    ids = store.read_blocking(lambda conn: list(conn.execute(select(accounts.c.id)).scalars()))
    wanted = [*range(-70_000, 0), ids[0], ids[-1], ids[0]]

    def found(conn: Connection) -> list[int]:
        return sorted(conn.execute(select(accounts.c.id).where(among(conn, accounts.c.id, wanted))).scalars())

    assert store.read_blocking(found) == sorted({ids[0], ids[-1]})
