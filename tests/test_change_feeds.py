"""The changes feeds of lists and segments (``GET /v2/lists/{id}/changes``,
``GET /v2/segments/{id}/changes`` and the console's page of a segment's changes) are in time order,
``since`` keeping the later ones, and SQLite reads a page of each on the feed's index by time: nothing
sorted, ``since`` a range of the index rather than a walk through the changes before it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from patron import accounts
from patron.config import Settings
from patron.console import segment_reads
from patron.console.pages_reads import PAGE
from patron.profiles import lists
from patron.profiles.segments import members
from patron.store import Store, open_store
from test_segment_members import applied, contacts, plan, pushed, shop

SIZE = PAGE + 10  # the console's page and a part of the next


def seed(store: Store) -> tuple[int, int, datetime]:
    """An account whose list ``news`` and GB segment took ``SIZE`` entries, then 10 exits of each
    after the time returned."""
    account, segment_id = shop(store)
    people = [{**person, "@add_to_lists": ["news"]} for person in contacts(0, SIZE)]
    pushed(store, account, people)
    applied(store)
    between = accounts.now()
    leaving = [{**person, "country_id": "FR", "@remove_from_lists": ["news"]} for person in contacts(0, 10)]
    pushed(store, account, leaving)
    applied(store)
    return account.id, segment_id, between


@pytest.fixture
def feeds(store: Store) -> tuple[int, int, datetime]:
    return seed(store)


def test_the_feeds_are_in_time_order_and_since_keeps_the_later_changes(
    store: Store, feeds: tuple[int, int, datetime]
) -> None:
    account_id, segment_id, between = feeds
    each: list[Callable[[Connection, datetime | None, int], list[Any]]] = [
        lambda conn, since, offset: lists.changes(conn, account_id, "news", since, 250, offset),
        lambda conn, since, offset: members.changes(conn, account_id, segment_id, since, 250, offset),
    ]
    for feed in each:
        whole = store.read_blocking(lambda conn, f=feed: f(conn, None, 0))  # type: ignore[misc]
        assert len(whole) == SIZE + 10
        assert [change.timestamp for change in whole] == sorted(change.timestamp for change in whole)
        assert {change.kind.split("_")[1] for change in whole[SIZE:]} == {"exit"}
        later = store.read_blocking(lambda conn, f=feed: f(conn, between, 0))  # type: ignore[misc]
        assert later == whole[SIZE:]
        assert store.read_blocking(lambda conn, f=feed: f(conn, between, 4)) == whole[SIZE + 4 :]  # type: ignore[misc]


def test_the_consoles_page_of_a_segments_changes_goes_back_in_time_a_page_at_a_time(
    store: Store, feeds: tuple[int, int, datetime]
) -> None:
    account_id, segment_id, _ = feeds
    first, before = store.read_blocking(
        lambda conn: segment_reads.changes_page(conn, account_id, segment_id, None)
    )
    assert len(first) == PAGE and before == first[-1].row
    rest, after = store.read_blocking(
        lambda conn: segment_reads.changes_page(conn, account_id, segment_id, before)
    )
    assert after is None and len(rest) == SIZE + 10 - PAGE
    seen = first + rest
    assert [(c.at, c.row) for c in seen] == sorted(((c.at, c.row) for c in seen), reverse=True)
    assert [c.kind for c in seen[:10]] == ["segment_exit"] * 10
    assert len({c.row for c in seen}) == SIZE + 10


def test_sqlite_reads_a_page_of_each_feed_on_its_index_by_time(tmp_path: Path) -> None:
    """(PostgreSQL chooses its plans from the statistics of the data.)"""
    store = open_store(replace(Settings(), data_dir=tmp_path / "data", database_url=None, redis_url=None))
    store.start()
    try:
        check_plans(store, *seed(store))
    finally:
        store.close()


def check_plans(store: Store, account_id: int, segment_id: int, between: datetime) -> None:
    reads: list[tuple[str, Callable[[Connection], object], bool]] = []
    for since in (None, between):
        reads += [
            (
                "list_changes",
                lambda conn, s=since: lists.changes(conn, account_id, "news", s, 10, 5),
                bool(since),
            ),
            (
                "segment_changes",
                lambda conn, s=since: members.changes(conn, account_id, segment_id, s, 10, 5),
                bool(since),
            ),
        ]
    reads.append(
        ("segment_changes", lambda conn: segment_reads.changes_page(conn, account_id, segment_id, 20), True)
    )
    for table, read, ranged in reads:
        how = store.read_blocking(lambda conn, r=read, t=table: plan(conn, r, t))  # type: ignore[misc]
        assert "TEMP B-TREE" not in how and f"ix_{table}_account_" in how, how
        assert ("created_at<" in how or "created_at>" in how or "(created_at,id)<" in how) == ranged, how
