"""Lists (Ometria's segments): static lists filled by ``@add_to_lists`` and ``@remove_from_lists``.

Membership is per profile. Every entry and exit is kept as a ``list_enter`` / ``list_exit`` event for
``GET /v2/lists/{id}/changes``. A list id a push names for the first time creates a static list with
no title; ``POST /v2/lists`` creates one with a title.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

import msgspec
from sqlalchemy import Connection, Table, delete, func, insert, select, update

from patron.errors import Conflict, FieldError
from patron.profiles import build
from patron.store import lock_account, upsert
from patron.store.schema import list_changes, list_members, lists, profiles

ENTER: Final = "list_enter"
EXIT: Final = "list_exit"
Mode = Literal["active", "all", "archived"]
#: The most lists one account may have (a push naming a new list beyond it is refused).
MAX_LISTS: Final = 10_000


def _insert_new(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """Insert unless the row's unique key exists; whether it was inserted."""
    statement = upsert(conn, table).values(**values).on_conflict_do_nothing().returning(table.c.id)
    return conn.execute(statement).first() is not None


class TooManyLists(Conflict):
    """The account has :data:`MAX_LISTS` lists already: the field that names one more (``field``, a
    body path) is at fault."""

    def __init__(self, field: str) -> None:
        message = f"the account has {MAX_LISTS:,} lists, the most it may have"
        super().__init__(message, errors=[FieldError(field, message)])


def _new_list(conn: Connection, values: dict[str, Any], field: str) -> bool:
    """Create a list unless its id is taken (whether it was created), within :data:`MAX_LISTS`
    (:class:`TooManyLists` naming ``field``)."""
    created = _insert_new(conn, lists, values)
    if created:
        held = conn.execute(select(func.count()).where(lists.c.account_id == values["account_id"])).scalar()
        if (held or 0) > MAX_LISTS:
            raise TooManyLists(field)
    return created


def ensure(conn: Connection, account_id: int, list_id: str, at: datetime) -> None:
    """Create the list as an untitled static list unless it exists (as a contact adds itself to it)."""
    values = {"account_id": account_id, "list_id": list_id, "created_at": at, "updated_at": at}
    _new_list(conn, values, "root > @add_to_lists")


def create(
    conn: Connection, account_id: int, list_id: str, title: str, description: str | None, at: datetime
) -> bool:
    """``POST /v2/lists``: False when the id is taken."""
    values = {"account_id": account_id, "list_id": list_id, "title": title, "description": description}
    return _new_list(conn, {**values, "created_at": at, "updated_at": at}, "root > id")


def next_id(conn: Connection, account_id: int) -> str:
    """An unused numeric list id (Ometria's look like ``"1234"``)."""
    taken = conn.execute(select(lists.c.list_id).where(lists.c.account_id == account_id)).scalars()
    return str(max((int(i) for i in taken if i.isdigit() and len(i) < 18), default=1000) + 1)


def update_details(
    conn: Connection, account_id: int, list_id: str, changes: dict[str, Any], at: datetime
) -> bool:
    """Change a list's title, description or archived flag; its members' profiles show the title."""
    lock_account(conn, account_id)  # profiles are the worker's: wait for its round on this account
    found = conn.execute(
        update(lists)
        .where(lists.c.account_id == account_id, lists.c.list_id == list_id)
        .values(**changes, updated_at=at)
    )
    if found.rowcount and "title" in changes:
        m = list_members
        members = conn.execute(
            select(m.c.profile).where(m.c.account_id == account_id, m.c.list_id == list_id)
        )
        build.refresh(conn, account_id, set(members.scalars()), at)
    return bool(found.rowcount)


def _change(conn: Connection, account_id: int, list_id: str, profile: str, event: str, at: datetime) -> None:
    conn.execute(
        insert(list_changes).values(
            account_id=account_id, list_id=list_id, profile=profile, event=event, created_at=at
        )
    )
    conn.execute(
        update(lists)
        .where(lists.c.account_id == account_id, lists.c.list_id == list_id)
        .values(updated_at=at)
    )


def add(conn: Connection, account_id: int, list_id: str, profile: str, at: datetime) -> bool:
    """Put the profile in the list; whether it entered (it was not in it already)."""
    ensure(conn, account_id, list_id, at)
    values = {"account_id": account_id, "list_id": list_id, "profile": profile, "created_at": at}
    entered = _insert_new(conn, list_members, values)
    if entered:
        _change(conn, account_id, list_id, profile, ENTER, at)
    return entered


def remove(conn: Connection, account_id: int, list_id: str, profile: str, at: datetime) -> bool:
    m = list_members
    left = conn.execute(
        delete(m).where(m.c.account_id == account_id, m.c.list_id == list_id, m.c.profile == profile)
    )
    if left.rowcount:
        _change(conn, account_id, list_id, profile, EXIT, at)
    return bool(left.rowcount)


def move(conn: Connection, account_id: int, merged: str, survivor: str, at: datetime) -> None:
    """On a merge: the survivor enters every list the merged profile was in, which it leaves."""
    m = list_members
    held = conn.execute(select(m.c.list_id).where(m.c.account_id == account_id, m.c.profile == merged))
    for list_id in list(held.scalars()):
        remove(conn, account_id, list_id, merged, at)
        add(conn, account_id, list_id, survivor, at)


# reads --------------------------------------------------------------------------------------------


class ListView(msgspec.Struct, tag_field="@type", tag="list", rename={"kind": "type"}):
    """A list as the API shows it (reference section 5.6; ``archived`` is an extension)."""

    id: str
    title: str | None
    description: str | None
    size: int
    status: str
    kind: str
    archived: bool
    timestamp_created: str
    timestamp_last_refreshed: str
    timestamp_stats_updated: str
    total_orders: int
    total_revenue: float


class ListChange(msgspec.Struct, rename={"kind": "type"}):
    kind: str  # list_enter | list_exit
    list_id: str
    profile_id: str
    timestamp: str


def stamp(moment: datetime) -> str:
    """``2015-11-03T11:48:10+00:00``, the form lists and profiles use."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def read(
    conn: Connection,
    account_id: int,
    *,
    list_id: str | None = None,
    mode: Mode = "active",
    limit: int = 1,
    offset: int = 0,
) -> list[ListView]:
    """A page of lists (or the one ``list_id`` names), in creation order, with the size and the
    order totals the worker keeps on each (one indexed read, whatever their size)."""
    where = [lists.c.account_id == account_id]
    if list_id is not None:
        where.append(lists.c.list_id == list_id)
    elif mode != "all":
        where.append(lists.c.archived.is_(mode == "archived"))
    rows = conn.execute(select(lists).where(*where).order_by(lists.c.id).limit(limit).offset(offset))
    return [
        ListView(
            id=row.list_id,
            title=row.title,
            description=row.description,
            size=int(row.size),
            status="READY",
            kind="STATIC",
            archived=row.archived,
            timestamp_created=stamp(row.created_at),
            timestamp_last_refreshed=stamp(row.updated_at),
            timestamp_stats_updated=stamp(row.stats_at or row.updated_at),
            total_orders=int(row.total_orders),
            total_revenue=round(row.total_revenue, 2),
        )
        for row in rows
    ]


def recount(conn: Connection, account_id: int, at: datetime) -> int:
    """Set every list's size and totals from its live members' profile documents, as the worker
    keeps them (``patron profiles rebuild``); returns how many lists were off."""
    totals = build.ListTotals()
    p = profiles
    for data in conn.execute(
        select(p.c.data).where(p.c.account_id == account_id, p.c.merged_into.is_(None))
    ).scalars():
        totals.add(build.counted(data), 1)
    wrong = 0
    for row in conn.execute(
        select(lists.c.list_id, lists.c.size, lists.c.total_orders, lists.c.total_revenue).where(
            lists.c.account_id == account_id
        )
    ):
        size, orders, revenue = totals.deltas.get(row.list_id, (0, 0, 0.0))
        if (row.size, row.total_orders) != (size, orders) or abs(row.total_revenue - revenue) > 0.005:
            wrong += 1
            conn.execute(
                update(lists)
                .where(lists.c.account_id == account_id, lists.c.list_id == row.list_id)
                .values(size=size, total_orders=orders, total_revenue=revenue, stats_at=at)
            )
    return wrong


def changes(
    conn: Connection, account_id: int, list_id: str, since: datetime | None, limit: int, offset: int
) -> list[ListChange]:
    """A page of the list's entries and exits in time order (then by row), on the list's index by
    time: nothing sorted, ``since`` a range of it."""
    c = list_changes
    where = [c.c.account_id == account_id, c.c.list_id == list_id]
    if since is not None:
        where.append(c.c.created_at >= since)
    rows = conn.execute(select(c).where(*where).order_by(c.c.created_at, c.c.id).limit(limit).offset(offset))
    return [ListChange(r.event, r.list_id, r.profile, stamp(r.created_at)) for r in rows]
