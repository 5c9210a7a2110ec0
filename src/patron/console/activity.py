"""What the dashboard's charts show, read through indexes over a bounded window (never a scan of an
account's records): records accepted and rejected per hour, orders and revenue per day, profiles
created per day, tracking sessions started per day by their source's medium. Times are UTC; every
hour or day of the window is present, with zeros where nothing happened."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import BindParameter, Connection, bindparam, func, select

from patron.console.reads import STORED
from patron.store.schema import import_batches, import_hours, orders, profiles, tracking_sessions
from patron.tracking.sources import Source

IMPORT_HOURS = 7 * 24
ORDER_DAYS = 90
PROFILE_DAYS = 90
SESSION_DAYS = 30
#: Sources shown apart (the most frequent media of the window); the rest are added up as "other".
MEDIA_SHOWN = 5
HOUR, DAY = "hour", "day"


class Series(msgspec.Struct):
    label: str
    values: list[float]


class Chart(msgspec.Struct):
    """One chart: the start of each hour or day (Unix seconds, UTC), and a value per start per series."""

    name: str
    title: str
    step: str  # hour | day
    starts: list[int]
    series: list[Series]


class Charts(msgspec.Struct):
    charts: list[Chart]


#: Each chart's name and title, in the order the dashboard shows them.
TITLES: dict[str, str] = {
    "records": "Records accepted and rejected per hour, last 7 days",
    "orders": "Orders and revenue per day, last 90 days",
    "profiles": "New profiles per day, last 90 days",
    "sessions": "Tracked sessions per day by source, last 30 days",
}


def _starts(now: datetime, step: str, count: int) -> list[datetime]:
    """The last ``count`` hours or days up to ``now`` (the current one included), oldest first."""
    now = now.astimezone(UTC)
    if step == HOUR:
        last, delta = now.replace(minute=0, second=0, microsecond=0), timedelta(hours=1)
    else:
        last, delta = now.replace(hour=0, minute=0, second=0, microsecond=0), timedelta(days=1)
    return [last - delta * n for n in range(count - 1, -1, -1)]


def _ranges(starts: list[datetime], step: str) -> list[tuple[datetime, datetime]]:
    delta = timedelta(hours=1) if step == HOUR else timedelta(days=1)
    return [(start, start + delta) for start in starts]


# Each hour or day is read by its own range of the index: summing a range needs no sort, where one
# GROUP BY over the window would sort all its rows (three times slower on a large account).
LO: BindParameter[Any] = bindparam("lo")
HI: BindParameter[Any] = bindparam("hi")


def records(conn: Connection, account_id: int, now: datetime) -> Chart:
    """Records pushed per hour: accepted (queued) and rejected at validation, of the record types
    (not the operations queued beside them), from the queue's rows and, for the rows pruned, from
    their counts per hour (``import_hours``)."""
    starts = _starts(now, HOUR, IMPORT_HOURS)
    b, h = import_batches.c, import_hours.c
    query = select(func.coalesce(func.sum(b.accepted), 0), func.coalesce(func.sum(b.rejected), 0)).where(
        b.account_id == account_id, b.received_at >= LO, b.received_at < HI, b.record_type.in_(list(STORED))
    )
    pruned = {
        hour.astimezone(UTC): (int(a), int(r))
        for hour, a, r in conn.execute(
            select(h.hour, func.sum(h.accepted), func.sum(h.rejected))
            .where(h.account_id == account_id, h.hour >= starts[0], h.record_type.in_(list(STORED)))
            .group_by(h.hour)
        )
    }
    accepted: list[float] = []
    rejected: list[float] = []
    for lo, hi in _ranges(starts, HOUR):
        a, r = conn.execute(query, {"lo": lo, "hi": hi}).one()
        pa, pr = pruned.get(lo.astimezone(UTC), (0, 0))
        accepted.append(int(a) + pa)
        rejected.append(int(r) + pr)
    return _chart("records", HOUR, starts, [Series("Accepted", accepted), Series("Rejected", rejected)])


def orders_per_day(conn: Connection, account_id: int, now: datetime) -> Chart:
    """Orders placed per day (those counted: valid, not cancelled) and their revenue in the base
    currency, read from ``ix_orders_account_placed`` alone."""
    starts = _starts(now, DAY, ORDER_DAYS)
    o = orders.c
    query = select(func.count(), func.coalesce(func.sum(o.revenue), 0)).where(
        o.account_id == account_id, o.placed_at >= LO, o.placed_at < HI, o.counted.is_(True)
    )
    placed: list[float] = []
    revenue: list[float] = []
    for lo, hi in _ranges(starts, DAY):  # placed_at is UTC ISO 8601 text: a day is a range of it
        n, r = conn.execute(query, {"lo": lo.strftime("%Y-%m-%d"), "hi": hi.strftime("%Y-%m-%d")}).one()
        placed.append(int(n))
        revenue.append(round(float(r), 2))
    return _chart("orders", DAY, starts, [Series("Orders", placed), Series("Revenue", revenue)])


def profiles_per_day(conn: Connection, account_id: int, now: datetime) -> Chart:
    """Profiles created per day (including those since merged into another)."""
    starts = _starts(now, DAY, PROFILE_DAYS)
    p = profiles.c
    query = select(func.count()).where(p.account_id == account_id, p.created_at >= LO, p.created_at < HI)
    created: list[float] = [
        int(conn.execute(query, {"lo": lo, "hi": hi}).scalar_one()) for lo, hi in _ranges(starts, DAY)
    ]
    return _chart("profiles", DAY, starts, [Series("New profiles", created)])


def _medium(source: str | None) -> str:
    """The medium of a session's source (as :mod:`patron.tracking.sources` classified it)."""
    if not source:
        return "unknown"
    try:
        return msgspec.json.decode(source, type=Source).medium or "unknown"
    except msgspec.DecodeError:
        return "unknown"


def sessions_per_day(conn: Connection, account_id: int, now: datetime) -> Chart:
    """Sessions started per day, by their source's medium (direct, organic, referral, email, cpc...):
    the most frequent of the window apart, the rest as "other"."""
    starts = _starts(now, DAY, SESSION_DAYS)
    s = tracking_sessions.c
    query = (
        select(s.source, func.count())
        .where(s.account_id == account_id, s.started_at >= LO, s.started_at < HI)
        .group_by(s.source)
    )
    days: list[Counter[str]] = []
    totals: Counter[str] = Counter()
    for lo, hi in _ranges(starts, DAY):
        counts: Counter[str] = Counter()
        for source, n in conn.execute(query, {"lo": lo, "hi": hi}):
            counts[_medium(source)] += int(n)
        days.append(counts)
        totals.update(counts)
    shown = [medium for medium, _ in totals.most_common(MEDIA_SHOWN)]
    series = [Series(medium, [day[medium] for day in days]) for medium in shown]
    if len(totals) > len(shown):
        series.append(Series("other", [sum(day.values()) - sum(day[m] for m in shown) for day in days]))
    return _chart("sessions", DAY, starts, series or [Series("Sessions", [0] * len(starts))])


def _chart(name: str, step: str, starts: list[datetime], series: list[Series]) -> Chart:
    return Chart(name, TITLES[name], step, [int(start.timestamp()) for start in starts], series)


def charts(conn: Connection, account_id: int, now: datetime) -> Charts:
    return Charts(
        [
            records(conn, account_id, now),
            orders_per_day(conn, account_id, now),
            profiles_per_day(conn, account_id, now),
            sessions_per_day(conn, account_id, now),
        ]
    )
