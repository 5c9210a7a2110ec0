"""What the console's overview pages read, each with indexed queries (never a scan of an account's
records per page view): records stored by type (their numbering), the queue, rejects, last pushes."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
from sqlalchemy import Connection, Table, func, select

from patron.accounts import Account
from patron.operators import Operator, account_for
from patron.store.schema import (
    contacts,
    custom_events,
    import_batches,
    import_hours,
    orders,
    products,
    profiles,
    push_errors,
    tracking_sessions,
)

#: Record types, and the tables that hold them.
STORED: dict[str, Table] = {
    "contact": contacts,
    "order": orders,
    "product": products,
    "custom_event": custom_events,
}


class Overview(msgspec.Struct):
    """One account at a glance."""

    hash: str
    name: str
    environment: str
    records: dict[str, int]
    profiles: int
    queued_records: int
    oldest_queued: datetime | None
    rejected_24h: int
    last_push: datetime | None
    last_beacon: datetime | None


def _stored(conn: Connection, table: Table, account_id: int) -> int:
    """Records of the account in ``table``: the last of their numbering (an index's last entry)."""
    found = conn.execute(select(func.max(table.c.seq)).where(table.c.account_id == account_id)).scalar()
    return int(found or 0)


def overview(conn: Connection, account: Account, now: datetime) -> Overview:
    b, e, s, p = import_batches.c, push_errors.c, tracking_sessions.c, profiles.c
    oldest = conn.execute(
        select(func.min(b.received_at)).where(b.account_id == account.id, b.status == "queued")
    ).scalar()
    queued = conn.execute(
        select(func.coalesce(func.sum(b.accepted), 0)).where(b.account_id == account.id, b.status == "queued")
    ).scalar_one()
    # push errors are numbered in arrival order: those of the last day are the last ids
    since = now - timedelta(days=1)
    first_recent = conn.execute(
        select(func.min(e.id)).where(e.account_id == account.id, e.created_at >= since)
    ).scalar()
    rejected = 0
    if first_recent is not None:
        rejected = conn.execute(
            select(func.count()).where(
                e.account_id == account.id, e.id >= first_recent, e.severity == "error"
            )
        ).scalar_one()
    last_push = max(
        (
            at
            for at in (
                conn.execute(select(func.max(b.received_at)).where(b.account_id == account.id)).scalar(),
                # the requests whose queued rows were pruned (patron.retention)
                conn.execute(
                    select(func.max(import_hours.c.last_received_at)).where(
                        import_hours.c.account_id == account.id
                    )
                ).scalar(),
            )
            if at is not None
        ),
        default=None,
    )
    last_beacon = conn.execute(select(func.max(s.last_at)).where(s.account_id == account.id)).scalar()
    live = conn.execute(
        select(func.count()).where(p.account_id == account.id, p.merged_into.is_(None))
    ).scalar_one()
    return Overview(
        hash=account.hash,
        name=account.name,
        environment=account.environment,
        records={kind: _stored(conn, table, account.id) for kind, table in STORED.items()},
        profiles=int(live),
        queued_records=int(queued),
        oldest_queued=oldest,
        rejected_24h=int(rejected),
        last_push=last_push,
        last_beacon=last_beacon,
    )


def granted(conn: Connection, operator: Operator, account_hash: str, now: datetime) -> Overview:
    """The overview of ``account_hash`` if ``operator`` may see it (else it does not exist for them)."""
    return overview(conn, account_for(operator, conn, account_hash), now)


def overviews(conn: Connection, granted: list[Account], now: datetime) -> list[Overview]:
    return [overview(conn, account, now) for account in granted]
