"""History and freshness: orders per month over the account's history (a month with none, or under a
tenth of its neighbours', is an import that is missing), when each record type and the tag were last
pushed, and the record types never pushed at all."""

from __future__ import annotations

from sqlalchemy import Table, func, select

from patron.report.orders import EARLIEST
from patron.report.rules import Context, Tally, rule
from patron.store.schema import (
    contacts,
    custom_events,
    import_batches,
    import_hours,
    orders,
    products,
    tracking_sessions,
)

#: What an account must have pushed to go live, and the tables their records are kept in.
REQUIRED: dict[str, Table] = {"contact": contacts, "order": orders, "product": products}
TYPES: dict[str, Table] = {**REQUIRED, "custom_event": custom_events}


def _months(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:7])
    found = []
    while f"{year:04d}-{month:02d}" <= last:
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def orders_per_month(ctx: Context) -> dict[str, int]:
    """Every month from the account's first order to its last (within 1990 and now) and its orders."""
    c = orders.c
    month = func.substr(c.placed_at, 1, 7)
    rows = ctx.conn.execute(
        select(month, func.count())
        .where(c.account_id == ctx.account_id, c.placed_at >= EARLIEST, c.placed_at <= ctx.now.isoformat())
        .group_by(month)
    ).all()
    counted = {str(m): int(n) for m, n in rows}
    if not counted:
        return {}
    return {m: counted.get(m, 0) for m in _months(min(counted), max(counted))}


@rule(
    "history.order_gaps",
    "warning",
    "Months of the account's order history have no orders, or under a tenth of their neighbours': an "
    "import of past orders is probably missing.",
    "Push the orders of the months named (their history import), then check the report again.",
)
def order_gaps(ctx: Context, tally: Tally) -> None:
    monthly = orders_per_month(ctx)
    months = list(monthly)
    if monthly:
        tally.summary = "orders per month: " + ", ".join(f"{m} {n}" for m, n in monthly.items())
    for i, month in enumerate(months):
        neighbours = [monthly[months[j]] for j in (i - 1, i + 1) if 0 <= j < len(months)]
        if not neighbours:
            continue
        usual = sum(neighbours) / len(neighbours)
        if monthly[month] == 0 or monthly[month] < usual / 10:
            tally.add(month, monthly[month])


def _last_pushes(ctx: Context) -> dict[str, str]:
    found: dict[str, str] = {}
    # the queue's rows, and the counts of those pruned (patron.retention)
    for table, received in ((import_batches, "received_at"), (import_hours, "last_received_at")):
        c = table.c
        for kind, at in ctx.conn.execute(
            select(c.record_type, func.max(c[received]))
            .where(c.account_id == ctx.account_id, c.record_type.in_(list(TYPES)))
            .group_by(c.record_type)
        ):
            found[str(kind)] = max(found.get(str(kind), ""), at.isoformat())
    for kind, table in TYPES.items():  # records stored otherwise than by a queued push
        if kind not in found:
            at = ctx.conn.execute(
                select(func.max(table.c.updated_at)).where(table.c.account_id == ctx.account_id)
            ).scalar()
            if at is not None:
                found[kind] = at.isoformat()
    t = tracking_sessions.c  # a session's last_at is its latest event's: far fewer rows than the events
    tag = ctx.conn.execute(select(func.max(t.last_at)).where(t.account_id == ctx.account_id)).scalar()
    if tag is not None:
        found["tag"] = tag.isoformat()
    return found


@rule(
    "freshness.last_push",
    "info",
    "When each record type, and the website tag, last sent something.",
    "A type that stopped arriving long ago means a feed that stopped: restart it.",
)
def last_push(ctx: Context, tally: Tally) -> None:
    for kind, at in sorted(_last_pushes(ctx).items()):
        tally.add(kind, at)


@rule(
    "freshness.never_pushed",
    "error",
    "Record types an account needs (contacts, orders, products) were never pushed.",
    "Push each record type named, from the platform's full export, before going live.",
)
def never_pushed(ctx: Context, tally: Tally) -> None:
    seen = _last_pushes(ctx)
    for kind in REQUIRED:
        if kind not in seen:
            tally.add(kind)
