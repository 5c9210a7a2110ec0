"""Lists (Ometria's segments): static lists filled by ``@add_to_lists`` and ``@remove_from_lists``.

Membership is per profile. Every entry and exit is kept as a ``list_enter`` / ``list_exit`` event for
``GET /v2/lists/{id}/changes``. A list id a push names for the first time creates a static list with
no title; ``POST /v2/lists`` creates one with a title.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

import msgspec
from sqlalchemy import Connection, and_, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from patron.profiles import build
from patron.store import among, chunks, lock_account
from patron.store.schema import list_changes, list_members, lists, orders

ENTER: Final = "list_enter"
EXIT: Final = "list_exit"
Mode = Literal["active", "all", "archived"]


def _insert_new(conn: Connection, table: Any, values: dict[str, Any]) -> bool:
    """Insert unless the row's unique key exists; whether it was inserted."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
    return conn.execute(statement).first() is not None


def ensure(conn: Connection, account_id: int, list_id: str, at: datetime) -> None:
    """Create the list as an untitled static list unless it exists."""
    _insert_new(
        conn, lists, {"account_id": account_id, "list_id": list_id, "created_at": at, "updated_at": at}
    )


def create(
    conn: Connection, account_id: int, list_id: str, title: str, description: str | None, at: datetime
) -> bool:
    """``POST /v2/lists``: False when the id is taken."""
    values = {"account_id": account_id, "list_id": list_id, "title": title, "description": description}
    return _insert_new(conn, lists, {**values, "created_at": at, "updated_at": at})


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
    conn: Connection, account_id: int, *, list_id: str | None = None, mode: Mode = "active"
) -> list[ListView]:
    """Lists with their size and their members' orders and revenue (the profiles' stats)."""
    m = list_members
    where = [lists.c.account_id == account_id]
    if list_id is not None:
        where.append(lists.c.list_id == list_id)
    elif mode != "all":
        where.append(lists.c.archived.is_(mode == "archived"))
    found = list(conn.execute(select(lists).where(*where).order_by(lists.c.id)))
    sizes: dict[str, int] = {}
    members = select(m.c.list_id, m.c.profile).where(
        m.c.account_id == account_id, among(conn, m.c.list_id, [r.list_id for r in found])
    )
    member_rows = list(conn.execute(members)) if found else []
    for row in member_rows:
        sizes[row.list_id] = sizes.get(row.list_id, 0) + 1
    totals = _member_totals(conn, account_id, {r.profile for r in member_rows})
    out = []
    for row in found:
        orders = revenue = 0.0
        for member in member_rows:
            if member.list_id == row.list_id:
                o, r = totals.get(member.profile, (0, 0.0))
                orders, revenue = orders + o, revenue + r
        out.append(
            ListView(
                id=row.list_id,
                title=row.title,
                description=row.description,
                size=sizes.get(row.list_id, 0),
                status="READY",
                kind="STATIC",
                archived=row.archived,
                timestamp_created=stamp(row.created_at),
                timestamp_last_refreshed=stamp(row.updated_at),
                timestamp_stats_updated=stamp(row.updated_at),
                total_orders=int(orders),
                total_revenue=round(revenue, 2),
            )
        )
    return out


def _member_totals(conn: Connection, account_id: int, members: set[str]) -> dict[str, tuple[int, float]]:
    o = orders
    totals: dict[str, tuple[int, float]] = {}
    for chunk in chunks(sorted(members)):
        rows = conn.execute(
            select(o.c.profile, func.count(), func.coalesce(func.sum(o.c.revenue), 0.0))
            .where(
                and_(o.c.account_id == account_id, o.c.counted.is_(True)),
                among(conn, o.c.profile, chunk),
            )
            .group_by(o.c.profile)
        )
        totals.update({r[0]: (int(r[1]), float(r[2])) for r in rows})
    return totals


def changes(
    conn: Connection, account_id: int, list_id: str, since: datetime | None, limit: int, offset: int
) -> list[ListChange]:
    c = list_changes
    where = [c.c.account_id == account_id, c.c.list_id == list_id]
    if since is not None:
        where.append(c.c.created_at >= since)
    rows = conn.execute(select(c).where(*where).order_by(c.c.id).limit(limit).offset(offset))
    return [ListChange(r.event, r.list_id, r.profile, stamp(r.created_at)) for r in rows]
