"""A push, from body to durable queue: what ``POST /v2/push`` and the single-record POSTs share."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import msgspec

from patron.accounts import Account
from patron.ingest.queue import BacklogFull, Enqueued, backlog, enqueue, pack
from patron.ingest.submit import Submitter
from patron.metrics import instruments
from patron.records.validate import (
    BatchInvalid,
    FieldWarning,
    RecordError,
    RecordsInvalid,
    reason,
    split_raw,
    validate,
)
from patron.store import Store


class PushReply(msgspec.Struct, omit_defaults=True):
    """Ometria's push reply, with the rejected records, the unknown fields and the lenient readings
    spelled out."""

    status: str
    request_id: str
    accepted: int
    rejected: int
    errors: list[RecordError] = []
    warnings: list[FieldWarning] = []


class QueueSize(msgspec.Struct):
    limit: int
    remaining: int

    @property
    def headers(self) -> dict[str, str]:
        return {"X-QueueSize-Limit": str(self.limit), "X-QueueSize-Remaining": str(max(0, self.remaining))}


async def queue_size(store: Store, account: Account) -> QueueSize:
    queued = await store.read(lambda conn: backlog(conn, account.id))
    return QueueSize(account.queue_limit, account.queue_limit - queued)


def _count_rejected(errors: Sequence[RecordError]) -> None:
    if errors:
        rejected = instruments().rejected
        for error in errors:
            rejected.labels(reason(error)).inc()


async def push(
    submit: Submitter,
    account: Account,
    body: bytes,
    received: datetime,
    *,
    all_or_nothing: bool = False,
    notes: Sequence[FieldWarning] = (),
) -> tuple[PushReply, QueueSize]:
    """Validate ``body`` (strictly for a strict account) and commit its accepted records to the queue
    before returning; ``notes`` are warnings about the request as a whole (its ``Content-Type``), kept
    and answered with the records' own.

    Raises ``BatchInvalid`` (the body is not a push; with the queue's size), ``BacklogFull`` (with the
    queue's size), or with ``all_or_nothing`` ``RecordsInvalid`` when any record is rejected; in each
    case nothing is stored.
    """
    try:
        batch = validate(body, received, strict=account.strict)
    except BatchInvalid as exc:
        exc.headers.update((await queue_size(submit.store, account)).headers)
        raise
    if all_or_nothing and batch.errors:
        _count_rejected(batch.errors)
        raise RecordsInvalid(batch.errors)
    raws = split_raw(body) if batch.errors else []
    request_id = str(uuid.uuid4())
    packed = pack(batch.accepted)  # here, not on the writer thread every push waits for
    try:
        done: Enqueued = await submit.queue(
            lambda conn, limit: enqueue(
                conn, account.id, limit, request_id, batch, packed, raws, received, notes
            ),
            limit=account.queue_limit,
        )
    except BacklogFull as exc:
        size = QueueSize(exc.limit, exc.limit - exc.queued)
        refused = "this push does not fit, and nothing was stored"
        raise BacklogFull(exc.queued, exc.limit, refused=refused, headers=size.headers) from exc
    _count_rejected(batch.errors)
    warnings = [*notes, *batch.warnings] if notes else batch.warnings
    reply = PushReply("OK", request_id, done.accepted, done.rejected, batch.errors, warnings)
    return reply, QueueSize(account.queue_limit, account.queue_limit - done.queued)
