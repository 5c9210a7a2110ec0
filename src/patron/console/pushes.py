"""What the console's Imports pages read: an account's push requests (``import_batches``), newest
first, a page at a time, and one request with its records as accepted, its errors and what was stored
from it. Every query is bounded: a page walks at most :data:`WINDOW` requests of the index
``(account_id, status)``; a request's errors are read through ``(account_id, request_id)``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Connection, and_, func, or_, select

from patron.gdpr import ANONYMISE, DONE, SWEEP
from patron.ingest.queue import APPLIED, QUEUED, unpack
from patron.model.storage import KINDS
from patron.profiles.operations import EMAIL_CLICK, MERGE, PREFERENCES, UNSUBSCRIBE
from patron.store.schema import import_batches, push_errors
from patron.tracking.events import TRACK

#: Record types a push carries, and the operations queued with them (``track``: a tag beacon).
RECORD_TYPES = ("contact", "order", "product", "custom_event")
OPERATIONS = (MERGE, UNSUBSCRIBE, PREFERENCES, EMAIL_CLICK, ANONYMISE, SWEEP, DONE, TRACK)
TYPES = RECORD_TYPES + OPERATIONS
#: What a request came to: still queued, applied, or with rejected records.
REJECTS = "rejects"
OUTCOMES = (QUEUED, APPLIED, REJECTS)
PAGE = 50
#: The most requests of one status a page walks through to find its rows (then "older" continues).
WINDOW = 5000
#: The most errors a request's page shows.
MAX_ERRORS = 500
_pretty = msgspec.json.Encoder()


class Batch(msgspec.Struct):
    """One push request (or queued operation) as the queue keeps it."""

    id: int
    request_id: str
    record_type: str
    status: str
    accepted: int
    rejected: int
    applied: int | None
    received_at: datetime
    applied_at: datetime | None


class BatchPage(msgspec.Struct):
    batches: list[Batch]
    older: int | None  # the next page's ``before``; None: no older request


_COLUMNS = (
    import_batches.c.id,
    import_batches.c.request_id,
    import_batches.c.record_type,
    import_batches.c.status,
    import_batches.c.accepted,
    import_batches.c.rejected,
    import_batches.c.applied,
    import_batches.c.received_at,
    import_batches.c.applied_at,
)


def _batch(row: Any) -> Batch:
    return Batch(*row)


def batches(
    conn: Connection,
    account_id: int,
    record_type: str | None = None,
    outcome: str | None = None,
    before: int | None = None,
    limit: int = PAGE,
) -> BatchPage:
    """The account's requests older than ``before``, newest first, of ``record_type`` and ``outcome``.

    For each status, the newest :data:`WINDOW` requests are walked on the index ``(account_id,
    status)`` (whose entries end with the id in SQLite) and filtered; the statuses' rows are merged.
    Where a window was walked to its end, rows below it are not known yet: the page stops there and
    its ``older`` continues from it."""
    t = import_batches.c
    statuses = [outcome] if outcome in (QUEUED, APPLIED) else [QUEUED, APPLIED]
    found: list[Batch] = []
    floor: int | None = None
    for status in statuses:
        window = select(t.id).where(t.account_id == account_id, t.status == status)
        if before is not None:
            window = window.where(t.id < before)
        window = window.order_by(t.id.desc()).limit(WINDOW)
        walked = window.subquery()
        count, lowest = conn.execute(select(func.count(), func.min(walked.c.id))).one()
        if count == WINDOW:
            floor = lowest if floor is None else max(floor, lowest)
        query = select(*_COLUMNS).where(t.id.in_(select(walked.c.id)))
        if record_type is not None:
            query = query.where(t.record_type == record_type)
        if outcome == REJECTS:
            query = query.where(t.rejected > 0)
        found.extend(_batch(row) for row in conn.execute(query.order_by(t.id.desc()).limit(limit)))
    found.sort(key=lambda b: -b.id)
    if floor is not None:
        found = [b for b in found if b.id >= floor]
    page = found[:limit]
    if len(page) == limit:
        return BatchPage(page, page[-1].id)
    return BatchPage(page, floor)


class Record(msgspec.Struct):
    """A record of a request as it was accepted, and the stored entity its key names (if stored)."""

    index: int
    text: str  # the record as JSON, indented
    record_type: str
    key: list[str] | None  # its key in the account (contacts: collection and id), None for operations
    stored: bool
    profile: str | None  # the profile the stored entity belongs to


class Error(msgspec.Struct):
    index: int | None
    record_id: str | None
    path: str
    message: str
    severity: str
    kind: str | None
    record: str | None  # the record as sent (rejected records only)
    created_at: datetime


class Request(msgspec.Struct):
    batch: Batch
    records: list[Record]
    errors: list[Error]


def _indented(record: Any) -> str:
    return msgspec.json.format(_pretty.encode(record), indent=2).decode()


def _keys(record_type: str, record: Any) -> tuple[str, ...] | None:
    kind = KINDS.get(record_type)
    if kind is None or not isinstance(record, dict):
        return None
    document = {"@collection": "default", **record} if record_type == "contact" else record
    try:
        return kind.key_of(document)
    except KeyError:
        return None


def _stored(
    conn: Connection, account_id: int, record_type: str, keys: list[tuple[str, ...]]
) -> dict[tuple[str, ...], str | None]:
    """The keys among ``keys`` that are stored, with the profile of each (on the unique key index)."""
    kind = KINDS.get(record_type)
    if kind is None or not keys:
        return {}
    columns = kind.key_columns()
    profile = kind.table.c.get("profile")
    chosen = [*columns, profile] if profile is not None else [*columns]
    wanted = or_(*(and_(*(c == v for c, v in zip(columns, key, strict=True))) for key in set(keys)))
    rows = conn.execute(select(*chosen).where(kind.table.c.account_id == account_id, wanted))
    n = len(columns)
    return {tuple(str(v) for v in row[:n]): (row[n] if profile is not None else None) for row in rows}


def request(conn: Connection, account_id: int, request_id: str) -> Request | None:
    t = import_batches.c
    row = conn.execute(
        select(*_COLUMNS, t.records).where(t.request_id == request_id, t.account_id == account_id)
    ).first()
    if row is None:
        return None
    batch = _batch(row[:-1])
    unpacked = unpack(row.records)
    keys = [_keys(batch.record_type, record) for record in unpacked]
    stored = _stored(conn, account_id, batch.record_type, [k for k in keys if k is not None])
    records = [
        Record(
            i,
            _indented(record),
            batch.record_type,
            list(key) if key is not None else None,
            key in stored,
            stored.get(key) if key is not None else None,
        )
        for i, (record, key) in enumerate(zip(unpacked, keys, strict=True))
    ]
    e = push_errors.c
    rows = conn.execute(
        select(
            e.record_index,
            e.record_id,
            e.error_path,
            e.error_message,
            e.severity,
            e.kind,
            e.record,
            e.created_at,
        )
        .where(e.account_id == account_id, e.request_id == request_id)  # ix_push_errors_account_request
        .order_by(e.id)
        .limit(MAX_ERRORS)
    )
    errors = [Error(*r) for r in rows]
    return Request(batch, records, errors)
