"""The import queue: one ``import_batches`` row per accepted push request, and the push errors.

Everything here is a function of a connection, run by the store inside one transaction: the backlog
check, the batch row and the rejected records of a request are committed together or not at all.
The push errors also keep the request's lenient readings (warnings with a ``kind``), as warnings.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import Connection, func, insert, select

from patron.errors import RETRY_AFTER, TooMany
from patron.records.validate import Batch, FieldWarning
from patron.store import notify_workers, upsert
from patron.store.schema import accounts, import_batches, push_errors, queue_counts

QUEUED = "queued"
APPLIED = "applied"
#: The severities of ``push_errors`` rows: a rejected record, or a lenient reading of an accepted one.
ERROR = "error"
WARNING = "warning"
_encode = msgspec.json.Encoder().encode
_decode_list = msgspec.json.Decoder(list[dict[str, Any]]).decode


def pack(records: Sequence[Any]) -> bytes:
    """The queue's copy of a request's records: their JSON array, deflated.

    zlib's fastest level costs 0.06 ms for 100 orders and shrinks them several times over, so the
    writer stores (and the disk keeps) a fraction of the bytes; pushes pack before they queue for the
    writer (docs/performance.md).
    """
    return zlib.compress(_encode(records), 1)


def unpack(packed: bytes) -> list[dict[str, Any]]:
    """The records of :func:`pack`; copies queued before they were packed are plain JSON arrays."""
    return _decode_list(packed if packed[:1] == b"[" else zlib.decompress(packed))


#: What a refused submission stored.
NOTHING_STORED = "nothing was stored"


class BacklogFull(TooMany):
    """The account's import queue has no room for the work: ``queued`` records wait, ``limit`` may.
    Nothing was stored (``refused`` says so in the caller's words)."""

    def __init__(
        self,
        queued: int,
        limit: int,
        *,
        refused: str = NOTHING_STORED,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            f"the account has {queued:,} records queued and may queue {limit:,}; {refused}",
            retry_after=RETRY_AFTER,
            headers=headers,
        )
        self.queued = queued
        self.limit = limit


class Enqueued(msgspec.Struct):
    request_id: str
    accepted: int
    rejected: int
    queued: int  # records queued for the account, this request's included


class BatchStatus(msgspec.Struct):
    request_id: str
    status: str
    record_type: str
    accepted: int
    rejected: int
    applied: int | None
    timestamp_received: str
    timestamp_applied: str | None


class PushError(msgspec.Struct, kw_only=True):
    """A rejected record (``severity`` ``error``), or a lenient reading (``warning``) of an accepted
    one or of the request (``index`` None), with its rule in ``kind``."""

    request_id: str
    record_type: str
    index: int | None
    id: str | None
    error_path: str
    error_message: str
    timestamp: str
    severity: str = ERROR
    kind: str | None = None
    record: msgspec.Raw | None = None  # the record as it was sent, passed through untouched


def backlog(conn: Connection, account_id: int) -> int:
    """Records accepted for the account and not yet applied."""
    q = queue_counts.c
    total = conn.execute(select(func.coalesce(func.sum(q.records), 0)).where(q.account_id == account_id))
    return int(total.scalar_one())


def depths(conn: Connection, limit: int) -> list[tuple[str, int, datetime | None]]:
    """The accounts with records queued, the ``limit`` largest backlogs first: each account's hash,
    its queued records, and when its oldest queued row was received (one indexed look per account)."""
    t = import_batches
    oldest = (
        select(t.c.received_at)
        .where(t.c.account_id == accounts.c.id, t.c.status == QUEUED)
        .order_by(t.c.id)
        .limit(1)
        .scalar_subquery()
    )
    q = queue_counts.c
    queued = (
        select(q.account_id, func.sum(q.records).label("records"))
        .group_by(q.account_id)
        .having(func.sum(q.records) > 0)
        .subquery()
    )
    rows = conn.execute(
        select(accounts.c.hash, queued.c.records, oldest)
        .join(queued, queued.c.account_id == accounts.c.id)
        .order_by(queued.c.records.desc(), accounts.c.id)
        .limit(limit)
    )
    return [(row[0], int(row[1]), row[2]) for row in rows]


def total_backlog(conn: Connection) -> int:
    """Records queued in every account."""
    total = conn.execute(select(func.coalesce(func.sum(queue_counts.c.records), 0))).scalar_one()
    return int(total)


#: The rows an account's queued-record count is spread over (``queue_counts``).
QUEUE_SLOTS = 8


def count_queued(conn: Connection, account_id: int, change: int) -> None:
    """Move the account's queued-record count by ``change`` (in the transaction that queues or applies),
    in one of its slots, picked at random."""
    q = queue_counts
    statement = upsert(conn, q).values(
        account_id=account_id,
        slot=random.randrange(QUEUE_SLOTS),  # noqa: S311 (a spread, not a secret)
        records=change,
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[q.c.account_id, q.c.slot],
            set_={"records": q.c.records + statement.excluded.records},
        )
    )


def enqueue(
    conn: Connection,
    account_id: int,
    queue_limit: int | None,
    request_id: str,
    batch: Batch,
    packed: bytes,
    raw_records: list[bytes],
    received: datetime,
    notes: Sequence[FieldWarning] = (),
) -> Enqueued:
    """Queue a validated request (``packed``: :func:`pack` of its accepted records) and keep its
    rejected records and its lenient readings (the batch's, and ``notes`` about the request as a
    whole); raises :class:`BacklogFull` when its records do not fit under the account's queue
    limit."""
    return _enqueue(
        conn,
        account_id,
        queue_limit,
        request_id,
        batch.record_type,
        (packed, len(batch.accepted)),
        batch,
        raw_records,
        received,
        notes,
    )


def enqueue_operation(
    conn: Connection,
    account_id: int,
    queue_limit: int | None,
    request_id: str,
    operation: str,
    body: msgspec.Struct,
    received: datetime,
) -> Enqueued:
    """Queue an operation (a profile merge, an operator's unsubscribe), so that the worker applies it
    in order with the records pushed before and after it. ``queue_limit=None``: never refused for a
    backlog (what people do through email links is always recorded)."""
    return _enqueue(
        conn, account_id, queue_limit, request_id, operation, (pack([body]), 1), None, [], received
    )


def _enqueue(
    conn: Connection,
    account_id: int,
    queue_limit: int | None,
    request_id: str,
    record_type: str,
    records: tuple[bytes, int],  # packed, and how many
    batch: Batch | None,
    raw_records: list[bytes],
    received: datetime,
    notes: Sequence[FieldWarning] = (),
) -> Enqueued:
    queued = backlog(conn, account_id)
    packed, accepted = records
    if accepted and queue_limit is not None and queued + accepted > queue_limit:
        raise BacklogFull(queued, queue_limit)
    if accepted:
        count_queued(conn, account_id, accepted)
    conn.execute(
        insert(import_batches).values(
            request_id=request_id,
            account_id=account_id,
            record_type=record_type,
            records=packed,
            accepted=accepted,
            rejected=len(batch.errors) if batch else 0,
            status=QUEUED if accepted else APPLIED,
            applied=None if accepted else 0,
            received_at=received,
            applied_at=None if accepted else received,
        )
    )
    if accepted:
        notify_workers(conn)
    if batch is not None:
        kept = [
            _Kept(e.index, e.id, e.error_path, e.error_message, raw_records[e.index], ERROR, e.kind)
            for e in batch.errors
        ]
        # a lenient reading's record was accepted: it is read from its endpoint, not copied here
        kept.extend(
            _Kept(w.index, w.id, w.path, w.message, None, WARNING, w.kind)
            for w in (*notes, *batch.warnings)
            if w.kind is not None
        )
        if kept:  # in the order of the records (the feed reads them back newest first)
            kept.sort(key=lambda row: -1 if row.record_index is None else row.record_index)
            _keep(conn, account_id, request_id, batch.record_type, kept, received)
    return Enqueued(request_id, accepted, len(batch.errors) if batch else 0, queued + accepted)


def record_errors(
    conn: Connection,
    account_id: int,
    request_id: str,
    record_type: str,
    errors: list[tuple[int, str | None, str, str, bytes | None]],
    at: datetime,
) -> None:
    """Keep rejected records (index, id, path, message, the record as sent) for ``/v2/push/_errors``."""
    _keep(conn, account_id, request_id, record_type, [_Kept(*error, ERROR, None) for error in errors], at)


class _Kept(NamedTuple):
    """A row of ``push_errors``, as :func:`_keep` takes it."""

    record_index: int | None
    record_id: str | None
    path: str
    message: str
    raw: bytes | None
    severity: str
    kind: str | None


def _keep(
    conn: Connection, account_id: int, request_id: str, record_type: str, rows: list[_Kept], at: datetime
) -> None:
    from patron.records.fields import MAX_RECORD_BYTES

    conn.execute(
        insert(push_errors),
        [
            {
                "account_id": account_id,
                "request_id": request_id,
                "record_type": record_type,
                "record_index": row.record_index,
                "record_id": row.record_id,
                "error_path": row.path,
                "error_message": row.message,
                "record": row.raw.decode()
                if row.raw is not None and len(row.raw) <= MAX_RECORD_BYTES
                else None,
                "created_at": at,
                "severity": row.severity,
                "kind": row.kind,
            }
            for row in rows
        ],
    )


def batch_status(conn: Connection, account_id: int, request_id: str) -> BatchStatus | None:
    t = import_batches
    row = conn.execute(
        select(
            t.c.request_id,
            t.c.status,
            t.c.record_type,
            t.c.accepted,
            t.c.rejected,
            t.c.applied,
            t.c.received_at,
            t.c.applied_at,
        ).where(t.c.account_id == account_id, t.c.request_id == request_id)
    ).first()
    if row is None:
        return None
    return BatchStatus(
        row.request_id,
        row.status,
        row.record_type,
        row.accepted,
        row.rejected,
        row.applied,
        row.received_at.isoformat(),
        row.applied_at.isoformat() if row.applied_at else None,
    )


class Queued(msgspec.Struct):
    """An account's queued rows of one type, and the records they hold."""

    rows: int
    records: int
    oldest_received_at: datetime


class Backlog(msgspec.Struct):
    """An account's import queue: what waits, by type, and what the worker applied in the last hour."""

    queued: dict[str, Queued]
    applied_rows_last_hour: int
    applied_records_last_hour: int

    @property
    def oldest_received_at(self) -> datetime | None:
        return min((q.oldest_received_at for q in self.queued.values()), default=None)


#: How far back the hour's applied rows are looked for: a row applied in the last hour and received
#: before this (a day's wait in the queue) is not counted, so that the read stays within a day's rows.
APPLIED_LOOKBACK = timedelta(days=1)


def backlog_of(conn: Connection, account_id: int, now: datetime) -> Backlog:
    """The account's :class:`Backlog` (indexed reads: its queued rows, and the rows received in the
    last :data:`APPLIED_LOOKBACK`)."""
    t = import_batches.c
    queued = conn.execute(
        select(t.record_type, func.count(), func.coalesce(func.sum(t.accepted), 0), func.min(t.received_at))
        .where(t.account_id == account_id, t.status == QUEUED)
        .group_by(t.record_type)
        .order_by(t.record_type)
    ).all()
    applied = conn.execute(
        select(func.count(), func.coalesce(func.sum(t.applied), 0)).where(
            t.account_id == account_id,
            t.received_at >= now - APPLIED_LOOKBACK,
            t.status == APPLIED,
            t.applied_at >= now - timedelta(hours=1),
        )
    ).one()
    return Backlog(
        {kind: Queued(int(rows), int(records), oldest) for kind, rows, records, oldest in queued},
        int(applied[0]),
        int(applied[1]),
    )


def latest_errors(conn: Connection, account_id: int, limit: int, offset: int) -> list[PushError]:
    """The account's rejected records and lenient readings, newest first."""
    t = push_errors
    rows = conn.execute(
        select(t).where(t.c.account_id == account_id).order_by(t.c.id.desc()).limit(limit).offset(offset)
    )
    return [
        PushError(
            request_id=r.request_id,
            record_type=r.record_type,
            index=r.record_index,
            id=r.record_id,
            error_path=r.error_path,
            error_message=r.error_message,
            timestamp=r.created_at.isoformat(),
            severity=r.severity,
            kind=r.kind,
            record=msgspec.Raw(r.record.encode()) if r.record is not None else None,
        )
        for r in rows
    ]
