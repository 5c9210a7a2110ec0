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
import time
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import Connection, bindparam, select, update

from patron.accounts import now
from patron.ingest.queue import APPLIED, QUEUED, count_queued, record_errors, unpack
from patron.metrics import instruments
from patron.model.rounds import Op, Registry, Round
from patron.model.storage import Changes, plan, write
from patron.profiles.link import Linker
from patron.store import Store, StoreUnavailable, Wait, lock_account
from patron.store.schema import import_batches

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


def _oldest(
    conn: Connection, kinds: Registry, limit_records: int, account_id: int | None = None
) -> list[Queued]:
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
        # a kind that runs alone (a merge, an anonymisation...) is a round of its own, so that it
        # finds every record queued before it already written
        alone = kinds[row.record_type].alone
        if taken and (alone or total + row.accepted > limit_records):
            break
        taken.append(Queued(*row[:5], unpack(row.records)))
        total += row.accepted
        if alone:
            break
    return taken


def _times(n: int) -> list[datetime]:
    """``n`` strictly increasing application times, so that later requests sort later."""
    start = now()
    return [start + timedelta(microseconds=i) for i in range(n)]


def apply_round(store: Store, kinds: Registry, limit_records: int = ROUND_RECORDS) -> int:
    """Apply the oldest queued batches, each as its kind in ``kinds`` says; returns how many were
    applied. How a round runs is the store's: claimed per account where several workers may run at
    once (PostgreSQL), else planned on a reader and written by the one writer (SQLite)."""
    started = time.perf_counter()
    rounds = _claimed_round if store.parallel_workers else _shared_round
    batches = rounds(store, kinds, limit_records)
    if any(kinds[batch.record_type].erases for batch in batches):
        store.purge()  # the erased data's old bytes leave the store's files too
    if batches:
        measured = instruments()
        measured.rounds.observe(time.perf_counter() - started)
        applied: dict[str, int] = {}
        for batch in batches:
            applied[batch.record_type] = applied.get(batch.record_type, 0) + batch.accepted
        for record_type, records in applied.items():
            measured.applied.labels(record_type).inc(records)
    return len(batches)


def _shared_round(store: Store, kinds: Registry, limit_records: int) -> list[Queued]:
    """One writer for everything (SQLite): the round's reading and merging happen on a reader
    connection, and the writer thread only runs the resulting inserts and updates, so a round holds
    up other writes (the pushes' group commits) for as short a time as possible. Only the worker
    writes entities, so nothing changes them in between."""
    batches = store.read_blocking(lambda conn: _oldest(conn, kinds, limit_records))
    if not batches:
        return []
    times = _times(len(batches))
    try:
        changes = store.read_blocking(lambda conn: _plan(conn, kinds, batches, times))
        store.write_blocking(lambda conn: _commit(conn, kinds, batches, times, changes))
    except (Conflict, StoreUnavailable):
        raise
    except Exception:
        log.warning("a round failed to apply as a whole; applying its batches one by one", exc_info=True)
        for batch, at in zip(batches, times, strict=True):
            store.write_blocking(lambda conn, b=batch, t=at: _apply_alone(conn, kinds, b, t))  # type: ignore[misc]
    return batches


def _claimed_round(store: Store, kinds: Registry, limit_records: int) -> list[Queued]:
    """Several workers at once (PostgreSQL): claim an account that has queued batches and no other
    worker, and plan and write its oldest batches in the same transaction. Workers on other accounts
    run in parallel; one account's batches stay in arrival order. A round that fails as a whole is
    applied as a shared round, batch by batch where need be."""
    try:
        return store.write_blocking(lambda conn: _claim(conn, kinds, limit_records))
    except (Conflict, StoreUnavailable):
        raise
    except Exception:
        log.warning("a round failed to apply as a whole; applying its batches one by one", exc_info=True)
    return _shared_round(store, kinds, limit_records)


def _claim(conn: Connection, kinds: Registry, limit_records: int) -> list[Queued]:
    t = import_batches
    waiting = conn.execute(select(t.c.account_id).where(t.c.status == QUEUED).order_by(t.c.id).limit(100))
    for account_id in dict.fromkeys(waiting.scalars()):
        if not lock_account(conn, account_id, wait=False):
            continue  # another worker's, for now
        batches = _oldest(conn, kinds, limit_records, account_id)
        if batches:  # (none if a worker finished them since the look above)
            times = _times(len(batches))
            _commit(conn, kinds, batches, times, _plan(conn, kinds, batches, times))
            return batches
    return []


Planned = dict[tuple[int, str], Changes]


def _plan(conn: Connection, kinds: Registry, batches: list[Queued], times: list[datetime]) -> Planned:
    """The entity changes of a round: the records of each account and type, merged in arrival order."""
    groups: dict[tuple[int, str], list[tuple[dict[str, Any], datetime]]] = {}
    for batch, at in zip(batches, times, strict=True):
        if kinds[batch.record_type].storage is not None:
            group = groups.setdefault((batch.account_id, batch.record_type), [])
            group.extend((dict(record), at) for record in batch.records)
    return {
        (account, kind): plan(conn, account, kind, records) for (account, kind), records in groups.items()
    }


def _commit(
    conn: Connection, kinds: Registry, batches: list[Queued], times: list[datetime], changes: Planned
) -> None:
    t = import_batches
    marked = conn.execute(
        update(t)
        .where(t.c.id == bindparam("_id"), t.c.status == QUEUED)
        .values(status=APPLIED, applied=bindparam("_applied"), applied_at=bindparam("_at")),
        [{"_id": b.id, "_applied": b.accepted, "_at": at} for b, at in zip(batches, times, strict=True)],
    )
    if marked.rowcount != len(batches):
        raise Conflict("a batch of this round was applied elsewhere")
    for request_id in _write(conn, kinds, batches, times, changes):
        conn.execute(update(t).where(t.c.request_id == request_id).values(applied=t.c.applied - 1))
    for account_id in {b.account_id for b in batches}:
        count_queued(conn, account_id, -sum(b.accepted for b in batches if b.account_id == account_id))


def _write(
    conn: Connection, kinds: Registry, batches: list[Queued], times: list[datetime], changes: Planned
) -> list[str]:
    """Apply the round's rows in arrival order (records are linked to profiles), write the records,
    and recompute the profiles the round touched; returns the request id of each row that failed (and
    became a push error)."""
    failed = []
    for account_id in dict.fromkeys(b.account_id for b in batches):
        round = Round(conn, account_id, max(times))
        linker = round.links = Linker(round)
        steps = {kind: iter(c.steps) for (account, kind), c in changes.items() if account == account_id}
        ops = []
        for batch, at in zip(batches, times, strict=True):
            if batch.account_id == account_id:
                for index, record in enumerate(batch.records):
                    step = next(steps[batch.record_type]) if batch.record_type in steps else None
                    ops.append(Op(batch.record_type, record, step, at, batch.request_id, index))
        linker.preload(ops)
        for op in ops:
            kind = kinds[op.record_type]
            if kind.alone:
                linker.flush()  # it reads and moves what the records before it made
                linker.forget()
            kind.apply(round, op)
        for (account, record_type), change in changes.items():
            if account == account_id:
                linker.patch(change)
                write(conn, change, linker.links.get(record_type))
        linker.finish()
        for hook in kinds.hooks:
            hook(round)
        for failure in round.failures:
            raw = msgspec.json.encode(failure.record)
            entry = (failure.position, None, "root", failure.message, raw)
            record_errors(conn, account_id, failure.request_id, failure.record_type, [entry], max(times))
        failed += [failure.request_id for failure in round.failures]
    return failed


def _apply_alone(conn: Connection, kinds: Registry, batch: Queued, at: datetime) -> None:
    """Apply one batch, record by record where need be, unless another worker already has."""
    lock_account(conn, batch.account_id)
    t = import_batches
    claim = update(t).where(t.c.id == batch.id, t.c.status == QUEUED).values(status=APPLIED, applied_at=at)
    if conn.execute(claim).rowcount != 1:
        return
    applied = _apply_batch(conn, kinds, batch, at)
    conn.execute(update(t).where(t.c.id == batch.id).values(applied=applied))
    count_queued(conn, batch.account_id, -batch.accepted)


def _apply_records(conn: Connection, kinds: Registry, batch: Queued, at: datetime) -> int:
    """Plan and write ``batch`` on one connection; returns how many of its records applied."""
    changes = _plan(conn, kinds, [batch], [at])
    return len(batch.records) - len(_write(conn, kinds, [batch], [at], changes))


def _apply_batch(conn: Connection, kinds: Registry, batch: Queued, at: datetime) -> int:
    try:
        with conn.begin_nested():
            return _apply_records(conn, kinds, batch, at)
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
                applied += _apply_records(conn, kinds, batch._replace(records=[record]), at)
        except Exception as exc:
            raw = msgspec.json.encode(record)
            failures.append((index, str(record.get("id")), "root", f"could not be applied: {exc}", raw))
    if failures:
        record_errors(conn, batch.account_id, batch.request_id, batch.record_type, failures, at)
    return applied


def run(store: Store, kinds: Registry, stop: threading.Event, wait: Wait, idle_poll: float = 1.0) -> None:
    """Apply rounds until the queue is empty, then wait to be woken (at most ``idle_poll`` seconds)
    and start again. Returns when ``stop`` is set, or when ``wait`` says its waker has gone."""
    while not stop.is_set():
        try:
            applied = apply_round(store, kinds)
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
