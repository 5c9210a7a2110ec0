"""The worker: takes queued batches in arrival order and applies them.

On SQLite it is a thread inside ``patron serve``. Each round claims the oldest queued batches (up to
about :data:`ROUND_RECORDS` records), applies them and marks them applied in the same transaction, so
a crash in the middle of a round leaves the batches queued and the next start applies them again
from scratch, with the same result. A batch that fails to apply is retried record by record; a
record that still fails becomes a push error and never stalls the queue.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import msgspec
from sqlalchemy import Connection, select, update

from patron.accounts import now
from patron.ingest.apply import apply_records
from patron.ingest.queue import APPLIED, QUEUED, record_errors
from patron.store import Store, StoreUnavailable
from patron.store.schema import import_batches

log = logging.getLogger("patron.worker")
#: Roughly how many records one round (one transaction) applies.
ROUND_RECORDS = 1000
_decode = msgspec.json.Decoder(list[dict[str, Any]]).decode


def apply_round(conn: Connection, limit_records: int = ROUND_RECORDS) -> int:
    """Apply the oldest queued batches; returns how many batches were applied."""
    t = import_batches
    rows = conn.execute(
        select(t.c.id, t.c.request_id, t.c.account_id, t.c.record_type, t.c.records, t.c.accepted)
        .where(t.c.status == QUEUED)
        .order_by(t.c.id)
        .limit(max(1, limit_records // 10))
    ).all()
    taken: list[Any] = []
    total = 0
    for row in rows:
        if taken and total + row.accepted > limit_records:
            break
        taken.append(row)
        total += row.accepted
    at = now()
    for row in taken:
        records = _decode(row.records)
        applied = _apply_batch(conn, row.account_id, row.request_id, row.record_type, records, at)
        conn.execute(update(t).where(t.c.id == row.id).values(status=APPLIED, applied=applied, applied_at=at))
    return len(taken)


def _apply_batch(
    conn: Connection,
    account_id: int,
    request_id: str,
    record_type: str,
    records: list[dict[str, Any]],
    at: Any,
) -> int:
    try:
        with conn.begin_nested():
            apply_records(conn, account_id, record_type, [dict(r) for r in records], at)
        return len(records)
    except Exception:
        log.warning(
            "batch failed to apply as a whole; applying record by record", extra={"request_id": request_id}
        )
    applied = 0
    failures: list[tuple[int, str | None, str, str, bytes | None]] = []
    for index, record in enumerate(records):
        try:
            with conn.begin_nested():
                apply_records(conn, account_id, record_type, [dict(record)], at)
            applied += 1
        except Exception as exc:
            raw = msgspec.json.encode(record)
            failures.append((index, str(record.get("id")), "root", f"could not be applied: {exc}", raw))
    if failures:
        record_errors(conn, account_id, request_id, record_type, failures, at)
    return applied


class Worker:
    """Runs :func:`apply_round` on a thread until the queue is empty, then waits to be woken."""

    def __init__(self, store: Store, idle_poll: float = 1.0) -> None:
        self._store = store
        self._idle_poll = idle_poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="patron-worker", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                applied = self._store.write_blocking(apply_round)
            except StoreUnavailable:
                log.exception("the worker could not write; retrying")
                applied = 0
            except Exception:  # pragma: no cover - a bug; keep the thread alive and say so
                log.exception("the worker failed")
                applied = 0
            if not applied:
                self._wake.wait(self._idle_poll)
