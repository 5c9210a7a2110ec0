"""A segment's members are keyed by the segment and the profile: a page of them is read in profile id
order on that key at any depth, an export adds those who were members when it began (not one who
entered during it), an export queued by an older release starts again, and members written before
the key (migration 0028) are kept, and kept again by its downgrade."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import msgspec
import pytest
from sqlalchemy import Connection, bindparam, create_engine, event, make_url, select, text
from sqlalchemy.exc import IntegrityError

from patron import accounts, segments
from patron.accounts import Account
from patron.config import Settings
from patron.ingest.push import push
from patron.ingest.queue import enqueue_operation
from patron.ingest.submit import Submitter
from patron.ingest.worker import apply_round
from patron.profiles.segments import members
from patron.profiles.segments import rules as r
from patron.runtime import queue_kinds
from patron.store import Store, open_store
from patron.store.schema import UTCDateTime, list_members, profiles, segment_members

GB = r.parse({"field": "country_id", "op": "eq", "value": "GB"})


def contacts(first: int, count: int) -> list[dict[str, Any]]:
    made = range(first, first + count)
    return [{"@type": "contact", "id": f"c{n}", "email": f"c{n}@x.co", "country_id": "GB"} for n in made]


def pushed(store: Store, account: Account, records: list[dict[str, Any]]) -> None:
    submit = Submitter(store, wake=lambda: None)
    for start in range(0, len(records), 100):
        batch = json.dumps(records[start : start + 100]).encode()
        asyncio.run(push(submit, account, batch, accounts.now()))


def applied(store: Store, rounds: int | None = None) -> None:
    """The queue applied, or ``rounds`` rounds of it."""
    kinds, n = queue_kinds(), 0
    while (rounds is None or n < rounds) and apply_round(store, kinds):
        n += 1


def shop(store: Store) -> tuple[Account, int]:
    """An account with a segment of the contacts in GB, built."""
    account, _ = store.write_blocking(lambda conn: accounts.create_account(conn, "shop", "staging"))
    account = msgspec.structs.replace(account, queue_limit=10**6)
    segment_id = store.write_blocking(lambda conn: segments.create(conn, account.id, "g", GB, accounts.now()))
    return account, segment_id


def listed(store: Store, account_id: int, list_id: str) -> set[str]:
    m = list_members.c
    query = select(m.profile).where(m.account_id == account_id, m.list_id == list_id)
    return set(store.read_blocking(lambda conn: conn.execute(query).scalars().all()))


def plan(conn: Connection, read: Callable[[Connection], object], table: str) -> str:
    """How SQLite runs the one ordered read of ``table`` that ``read`` runs."""
    ran: list[tuple[str, Any]] = []

    def seen(*args: Any) -> None:
        if f"FROM {table}" in args[2] and "ORDER" in args[2]:
            ran.append((args[2], args[3]))  # (statement, parameters)

    event.listen(conn, "before_cursor_execute", seen)
    try:
        read(conn)
    finally:
        event.remove(conn, "before_cursor_execute", seen)
    [(statement, parameters)] = ran
    rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
    return " / ".join(row[-1] for row in rows)


def test_a_page_of_members_is_in_profile_id_order_at_any_depth(store: Store, settings: Settings) -> None:
    """The first profile enters last (it moves to GB): its page is still the first."""
    account, segment_id = shop(store)
    people = contacts(0, 250)
    pushed(store, account, [{**people[0], "country_id": "FR"}, *people[1:]])
    applied(store)
    pushed(store, account, people[:1])
    applied(store)
    made = select(profiles.c.profile_id).where(profiles.c.account_id == account.id)
    ids = store.read_blocking(lambda conn: conn.execute(made.order_by(profiles.c.id)).scalars().all())
    assert len(ids) == 250 and ids == sorted(ids)
    pages = [
        store.read_blocking(lambda conn, o=offset: members.member_ids(conn, account.id, segment_id, 100, o))
        for offset in (0, 100, 200)
    ]
    assert [pid for page in pages for pid in page] == ids
    docs = store.read_blocking(lambda conn: members.member_documents(conn, account.id, segment_id, 3, 0))
    assert [json.loads(doc)["id"] for doc in docs] == ids[:3]

    if settings.database_url is None:  # (PostgreSQL's plans follow its statistics)
        deep = partial(members.member_ids, account_id=account.id, segment_id=segment_id, limit=10, offset=200)
        how = store.read_blocking(lambda conn: plan(conn, deep, "segment_members"))
        assert "segment_members" in how and "TEMP B-TREE" not in how, how


def test_an_export_adds_who_was_a_member_when_it_began(store: Store) -> None:
    """A member who entered during the export (after its first step) is not added to the list."""
    account, segment_id = shop(store)
    many = members.EXPORT_STEP + 50
    pushed(store, account, contacts(0, many))
    applied(store)
    job = store.write_blocking(
        lambda conn: segments.export(conn, account.id, segment_id, "gb-list", accounts.now())
    )
    assert job is not None and job.size == many
    applied(store, rounds=1)  # the first step: EXPORT_STEP members added, the next step queued
    assert len(listed(store, account.id, "gb-list")) == members.EXPORT_STEP
    pushed(store, account, contacts(many, 1))  # a new member, after the first step's last profile
    applied(store)
    newest = select(profiles.c.profile_id).where(profiles.c.account_id == account.id)
    late = store.read_blocking(lambda conn: conn.execute(newest.order_by(profiles.c.id.desc())).scalar())
    held = store.read_blocking(lambda conn: members.member_ids(conn, account.id, segment_id, 250, many - 10))
    assert late in held
    added = listed(store, account.id, "gb-list")
    assert len(added) == many and late not in added


class OlderExport(msgspec.Struct):
    """An export step as an older release queued it (its place given by the members' row ids)."""

    segment: int
    list_id: str
    size: int
    after: int
    upto: int


def test_an_export_queued_by_an_older_release_adds_every_member(store: Store) -> None:
    account, segment_id = shop(store)
    pushed(store, account, contacts(0, 30))
    applied(store)
    older = OlderExport(segment_id, "old", 30, 10, 25)
    store.write_blocking(
        lambda conn: enqueue_operation(
            conn, account.id, None, str(uuid.uuid4()), segments.EXPORT, older, accounts.now()
        )
    )
    applied(store)
    assert len(listed(store, account.id, "old")) == 30


AT = bindparam("at", type_=UTCDateTime())


def _url(settings: Settings) -> str:
    if settings.database_url is None:
        return f"sqlite:///{settings.data_dir / 'patron.db'}"
    return make_url(settings.database_url).set(drivername="postgresql+psycopg").render_as_string(False)


def test_members_written_before_they_were_keyed_by_profile_are_kept(settings: Settings) -> None:
    """Migration 0028, up and down, on both stores."""
    from alembic import command

    from patron.store.migrate import _config

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(_url(settings))
    at = datetime(2026, 1, 1, tzinfo=UTC)
    entered = {"p3": at, "p1": at.replace(day=2), "p2": at.replace(day=3)}  # row ids not in profile order
    with engine.begin() as conn:
        # (a PostgreSQL database of the tests is made at the head: taken back to 0027)
        command.upgrade(_config(conn), "0027")
        command.downgrade(_config(conn), "0027")
        conn.execute(
            text(
                "INSERT INTO accounts (id, hash, name, environment, limits, created_at)"
                " VALUES (1, '0000000000000001', 'a', 'staging', '{}', :at)"
            ).bindparams(AT),
            {"at": at},
        )
        conn.execute(
            text(
                "INSERT INTO segments (id, account_id, name, rules, relative, version, status, cursor, size,"
                " created_at, updated_at) VALUES (7, 1, 's', :rules, false, 1, 'ready', 0, 3, :at, :at)"
            ).bindparams(AT),
            {"rules": json.dumps({"field": "country_id", "op": "eq", "value": "GB"}), "at": at},
        )
        for n, (profile, when) in enumerate(entered.items()):
            conn.execute(
                text(
                    "INSERT INTO segment_members (id, account_id, segment_id, profile, created_at)"
                    " VALUES (:id, 1, 7, :profile, :at)"
                ).bindparams(AT),
                {"id": 10 + n, "profile": profile, "at": when},
            )
    with engine.begin() as conn:
        command.upgrade(_config(conn), "head")
    store = open_store(settings)
    store.start()
    try:
        m = segment_members.c
        rows = store.read_blocking(
            lambda conn: conn.execute(select(m.profile, m.created_at).order_by(m.profile)).all()
        )
        assert [(row.profile, row.created_at) for row in rows] == sorted(entered.items())
        assert store.read_blocking(lambda conn: members.member_ids(conn, 1, 7, 10, 0)) == ["p1", "p2", "p3"]
        with pytest.raises(IntegrityError):  # the key keeps a profile a member once
            store.write_blocking(
                lambda conn: conn.execute(
                    segment_members.insert().values(account_id=1, segment_id=7, profile="p1", created_at=at)
                )
            )
    finally:
        store.close()
    with engine.begin() as conn:
        command.downgrade(_config(conn), "0027")
        back = conn.execute(text("SELECT id, profile FROM segment_members ORDER BY id")).all()
        assert [profile for _, profile in back] == ["p3", "p1", "p2"]  # in the order they entered
        assert len({row_id for row_id, _ in back}) == 3
    engine.dispose()
