"""The worker: takes queued batches in arrival order and applies them.

It runs as a process of its own: ``patron worker``, which ``patron serve`` starts and supervises on
SQLite, so that applying records and acknowledging pushes each have a core.
Each round takes the oldest queued batches (up to about :data:`ROUND_RECORDS` records), applies them
and marks them applied in the same transaction, so a crash in the middle of a round leaves the
batches queued and the next start applies them again from scratch, with the same result. A round
that fails to apply is retried batch by batch and record by record; a record that still fails
becomes a push error and never stalls the queue.
"""

from __future__ import annotations

import logging
import os
import select as io_select
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import Connection, bindparam, select, update

from patron import gdpr
from patron.accounts import now
from patron.ingest.apply import KINDS, Changes, plan, write
from patron.ingest.queue import APPLIED, QUEUED, count_queued, record_errors, unpack
from patron.profiles import operations
from patron.profiles.link import Linker, Op
from patron.store import Store, StoreUnavailable, lock_account
from patron.store.schema import import_batches
from patron.tracking import events

log = logging.getLogger("patron.worker")
#: Roughly how many records one round (one transaction) applies.
ROUND_RECORDS = 1000


class Queued(NamedTuple):
    id: int
    request_id: str
    account_id: int
    record_type: str
    accepted: int
    records: list[dict[str, Any]]


class Conflict(Exception):
    """A batch of the round was no longer queued when the round committed."""


def _oldest(conn: Connection, limit_records: int, account_id: int | None = None) -> list[Queued]:
    t = import_batches
    query = (
        select(t.c.id, t.c.request_id, t.c.account_id, t.c.record_type, t.c.accepted, t.c.records)
        .where(t.c.status == QUEUED)
        .order_by(t.c.id)
        .limit(max(1, limit_records // 10))
    )
    if account_id is not None:
        # The account's claim keeps its batches in order; FOR UPDATE SKIP LOCKED claims the rows too.
        query = query.where(t.c.account_id == account_id).with_for_update(skip_locked=True)
    rows = conn.execute(query)
    taken: list[Queued] = []
    total = 0
    for row in rows:
        # An operation (a merge, an anonymisation...) is a round of its own, so that it finds every
        # record queued before it already written.
        operation = row.record_type in OPERATIONS
        if taken and (operation or total + row.accepted > limit_records):
            break
        taken.append(Queued(*row[:5], unpack(row.records)))
        total += row.accepted
        if operation:
            break
    return taken


def _times(n: int) -> list[datetime]:
    """``n`` strictly increasing application times, so that later requests sort later."""
    start = now()
    return [start + timedelta(microseconds=i) for i in range(n)]


def _claimed_round(conn: Connection, limit_records: int) -> int:
    """PostgreSQL: claim an account that has queued batches and no other worker, and plan and write
    its oldest batches in the same transaction. Workers on other accounts run in parallel; one
    account's batches stay in arrival order."""
    t = import_batches
    waiting = conn.execute(select(t.c.account_id).where(t.c.status == QUEUED).order_by(t.c.id).limit(100))
    for account_id in dict.fromkeys(waiting.scalars()):
        if not lock_account(conn, account_id, wait=False):
            continue  # another worker's, for now
        batches = _oldest(conn, limit_records, account_id)
        if batches:  # (none if a worker finished them since the look above)
            times = _times(len(batches))
            _commit(conn, batches, times, _plan(conn, batches, times))
            return len(batches)
    return 0


def apply_round(store: Store, limit_records: int = ROUND_RECORDS) -> int:
    """Apply the oldest queued batches; returns how many were applied.

    Reading and merging happen on a reader connection; the writer thread only runs the resulting
    inserts and updates, so a round holds up other writes (the pushes' group commits) for as short a
    time as possible. Only the worker writes entities, so nothing changes them in between.
    """

    if store.parallel_workers:
        try:
            return store.write_blocking(lambda conn: _claimed_round(conn, limit_records))
        except (Conflict, StoreUnavailable):
            raise
        except Exception:
            log.warning("a round failed to apply as a whole; applying its batches one by one", exc_info=True)
    batches = store.read_blocking(lambda conn: _oldest(conn, limit_records))
    if not batches:
        return 0
    times = _times(len(batches))
    try:
        changes = store.read_blocking(lambda conn: _plan(conn, batches, times))
        store.write_blocking(lambda conn: _commit(conn, batches, times, changes))
    except (Conflict, StoreUnavailable):
        raise
    except Exception:
        log.warning("a round failed to apply as a whole; applying its batches one by one", exc_info=True)
        for batch, at in zip(batches, times, strict=True):
            store.write_blocking(lambda conn, b=batch, t=at: _apply_alone(conn, b, t))  # type: ignore[misc]
    if any(batch.record_type == gdpr.ANONYMISE for batch in batches):
        store.purge()  # the anonymised data's old bytes leave the store's files too
    return len(batches)


Planned = dict[tuple[int, str], Changes]
#: The operations the queue carries besides records, and what runs each.
OPERATIONS = {
    operations.MERGE: operations.merge,
    operations.UNSUBSCRIBE: operations.unsubscribe,
    operations.PREFERENCES: operations.preferences,
    operations.EMAIL_CLICK: operations.email_click,
    gdpr.ANONYMISE: gdpr.anonymise,
}


def _plan(conn: Connection, batches: list[Queued], times: list[datetime]) -> Planned:
    """The entity changes of a round: the records of each account and type, merged in arrival order."""
    groups: dict[tuple[int, str], list[tuple[dict[str, Any], datetime]]] = {}
    for batch, at in zip(batches, times, strict=True):
        if batch.record_type in KINDS:
            group = groups.setdefault((batch.account_id, batch.record_type), [])
            group.extend((dict(record), at) for record in batch.records)
    return {
        (account, kind): plan(conn, account, kind, records) for (account, kind), records in groups.items()
    }


def _commit(conn: Connection, batches: list[Queued], times: list[datetime], changes: Planned) -> None:
    t = import_batches
    marked = conn.execute(
        update(t)
        .where(t.c.id == bindparam("_id"), t.c.status == QUEUED)
        .values(status=APPLIED, applied=bindparam("_applied"), applied_at=bindparam("_at")),
        [{"_id": b.id, "_applied": b.accepted, "_at": at} for b, at in zip(batches, times, strict=True)],
    )
    if marked.rowcount != len(batches):
        raise Conflict("a batch of this round was applied elsewhere")
    for request_id in _write(conn, batches, times, changes):
        conn.execute(update(t).where(t.c.request_id == request_id).values(applied=t.c.applied - 1))
    for account_id in {b.account_id for b in batches}:
        count_queued(conn, account_id, -sum(b.accepted for b in batches if b.account_id == account_id))


def _write(conn: Connection, batches: list[Queued], times: list[datetime], changes: Planned) -> list[str]:
    """Link the round's records to profiles in arrival order, write them, and recompute the profiles
    they touched; returns the request id of each operation that failed (and became a push error)."""
    failed = []
    for account_id in dict.fromkeys(b.account_id for b in batches):
        linker = Linker(conn, account_id)
        steps = {kind: iter(c.steps) for (account, kind), c in changes.items() if account == account_id}
        ops = []
        for batch, at in zip(batches, times, strict=True):
            if batch.account_id == account_id:
                for index, record in enumerate(batch.records):
                    step = next(steps[batch.record_type]) if batch.record_type in steps else None
                    ops.append(Op(batch.record_type, record, step, at, batch.request_id, index))
        linker.preload(ops)
        for op in ops:
            if op.record_type == events.TRACK:
                events.apply(linker, op)
            elif op.step is None:
                linker.flush()  # an operation reads and moves what the records before it made
                linker.forget()
                OPERATIONS[op.record_type](linker, op)
            else:
                linker.apply(op)
        for (account, kind), change in changes.items():
            if account == account_id:
                linker.patch(change)
                write(conn, change, linker.links.get(kind))
        linker.finish(max(times))
        for failure in linker.failures:
            raw = msgspec.json.encode(failure.record)
            entry = (failure.position, None, "root", failure.message, raw)
            record_errors(conn, account_id, failure.request_id, failure.record_type, [entry], max(times))
        failed += [failure.request_id for failure in linker.failures]
    return failed


def _apply_alone(conn: Connection, batch: Queued, at: datetime) -> None:
    """Apply one batch, record by record where need be, unless another worker already has."""
    lock_account(conn, batch.account_id)
    t = import_batches
    claim = update(t).where(t.c.id == batch.id, t.c.status == QUEUED).values(status=APPLIED, applied_at=at)
    if conn.execute(claim).rowcount != 1:
        return
    applied = _apply_batch(conn, batch, at)
    conn.execute(update(t).where(t.c.id == batch.id).values(applied=applied))
    count_queued(conn, batch.account_id, -batch.accepted)


def _apply_records(conn: Connection, batch: Queued, at: datetime) -> int:
    """Plan and write ``batch`` on one connection; returns how many of its records applied."""
    changes = _plan(conn, [batch], [at])
    return len(batch.records) - len(_write(conn, [batch], [at], changes))


def _apply_batch(conn: Connection, batch: Queued, at: datetime) -> int:
    try:
        with conn.begin_nested():
            return _apply_records(conn, batch, at)
    except Exception:
        log.warning(
            "batch failed to apply as a whole; applying record by record",
            extra={"request_id": batch.request_id},
        )
    applied = 0
    failures: list[tuple[int, str | None, str, str, bytes | None]] = []
    for index, record in enumerate(batch.records):
        try:
            with conn.begin_nested():
                applied += _apply_records(conn, batch._replace(records=[record]), at)
        except Exception as exc:
            raw = msgspec.json.encode(record)
            failures.append((index, str(record.get("id")), "root", f"could not be applied: {exc}", raw))
    if failures:
        record_errors(conn, batch.account_id, batch.request_id, batch.record_type, failures, at)
    return applied


#: How the worker waits for work: ``wait(timeout)`` returns once woken or after ``timeout`` seconds,
#: and False when whatever wakes the worker has gone for good.
Wait = Callable[[float], bool]


def run(store: Store, stop: threading.Event, wait: Wait, idle_poll: float = 1.0) -> None:
    """Apply rounds until the queue is empty, then wait to be woken (at most ``idle_poll`` seconds)
    and start again. Returns when ``stop`` is set, or when ``wait`` says its waker has gone."""
    while not stop.is_set():
        try:
            applied = apply_round(store)
        except (StoreUnavailable, Conflict):
            log.exception("the worker could not apply a round; retrying")
            applied = 0
        except Exception:  # a bug: say so, and do not spin on it
            log.exception("the worker failed; retrying")
            stop.wait(idle_poll)
            applied = 0
        if not wait(0 if applied else idle_poll):
            return


def pipe_waker(fd: int) -> Wait:
    """Woken by bytes on ``fd`` (the pipe from ``patron serve``); gone when the pipe ends, as it does
    when the server dies, even by SIGKILL."""
    return lambda timeout: _woken(fd, timeout)


def _woken(fd: int, timeout: float) -> bool:
    """Wait up to ``timeout`` for wake-up bytes on ``fd`` and take them; False once ``fd`` has ended."""
    readable, _, _ = io_select.select([fd], [], [], timeout)
    return not readable or bool(os.read(fd, 65536))
