"""Retention: the worker forgets what only serves inspection once it is older than its setting
(``config.Retention``), so that the database does not grow without end:

- **applied rows of the import queue** (``import_batches``, with their copies of the records), by the
  time they were applied. Rows still queued are never touched. Their counts go into ``import_hours``
  first (requests, accepted and rejected records per account, hour and record type, and the last
  received), which the console's chart of records per hour and the last push of each type read
  beside the rows still kept; a merge's received time goes into its ``merge_jobs`` row, so that
  ``GET /v2/merge-profile/{id}`` still answers;
- **push errors** (``push_errors``), by the time they were recorded;
- **the tag's raw events** (``tracking_events``), by the time they were applied, except ``identify``
  and ``profile`` events, from which profiles take the data the tag gave (``profiles.build``).
  Sessions, visitors and the order sources stay;
- **webhook events** (``webhook_events``, one row per event and endpoint) once delivered or failed,
  by the time their last attempt was due (never before they were written, or replayed), with their
  attempts (``webhook_attempts``, the delivery log). A pending event is never touched, whatever its
  age, nor the events a disabled endpoint keeps (pending); a replay reaches back as far as this.

The newest row of each table always stays, so that SQLite never numbers a new row as an old one
(the console's live view follows the ids). A :class:`Pruner` thread of ``patron worker`` runs a pass
every :data:`POLL` seconds: steps of at most :data:`STEP` rows, each its own short write, with a
pause between them, and at most :data:`PASS_ROWS` rows of each table a pass; then, on SQLite, the
freed pages are given back to the file system (:meth:`Store.reclaim`) in steps of
:data:`VACUUM_STEP` pages. On PostgreSQL each step takes a lock that only one worker holds at a time
(``store.lock_task``): a worker that finds it taken ends its pass, so two workers never prune the
same rows.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import takewhile
from typing import Any, NamedTuple

from sqlalchemy import Column, ColumnElement, Connection, Table, case, delete, false, func, select, update

from patron.accounts import now
from patron.config import Retention
from patron.ingest.queue import APPLIED
from patron.profiles.build import TAG_PROFILE_EVENTS
from patron.profiles.operations import MERGE
from patron.store import PRUNING, Store, among, lock_task, upsert
from patron.store.schema import (
    import_batches,
    import_hours,
    merge_jobs,
    push_errors,
    tracking_events,
    webhook_attempts,
    webhook_events,
)
from patron.webhooks.outbox import DELIVERED, FAILED

log = logging.getLogger("patron.retention")

#: Rows deleted in one write transaction (on SQLite, one unit of the writer's group commit).
STEP = 500
#: Seconds between two steps, so that pushes' commits come between them.
PAUSE = 0.05
#: The most rows of each table one pass looks at.
PASS_ROWS = 50_000
#: Pages given back in one write (4 KiB each) after a pass, and the most a pass gives back.
VACUUM_STEP = 256
PASS_PAGES = 25_600
#: Seconds between passes (sooner when a pass stopped at its bounds).
POLL = 60.0


@dataclass
class Pruned:
    """What one pass did: rows deleted from each table, and free pages given back (SQLite)."""

    batches: int = 0
    errors: int = 0
    events: int = 0
    webhooks: int = 0
    pages: int = 0
    #: Whether the pass stopped at its bounds with more to do (or found another worker pruning).
    more: bool = False
    #: Where the walks of push errors and events stopped (by id): the next pass starts there.
    cursors: dict[str, int] = field(default_factory=dict)


class _Step(NamedTuple):
    """One step's outcome: rows deleted, rows looked at, the id the walk reached, and whether it
    stopped at its limit."""

    deleted: int
    examined: int
    reached: int
    full: bool


#: One step of pruning a table: ``(conn, cutoff, after)``.
Prune = Callable[[Connection, datetime, int], _Step]


def _newest(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.max(table.c.id))).scalar() or 0)


def prune_batches(conn: Connection, cutoff: datetime, after: int = 0, limit: int = STEP) -> _Step:
    """Delete up to ``limit`` rows of the queue applied before ``cutoff``, oldest first (on
    ``ix_import_batches_applied``; ``after`` is unused: no row is passed over), adding their counts
    to ``import_hours`` and the received time of merges to their jobs, in the same transaction."""
    if not lock_task(conn, PRUNING):
        return _Step(0, 0, after, True)
    t = import_batches
    oldest = select(t.c.id).where(t.c.applied_at < cutoff).order_by(t.c.applied_at).limit(limit)
    ids = [row.id for row in conn.execute(oldest)]
    newest = _newest(conn, t)
    doomed = [i for i in ids if i != newest]
    if not doomed:
        return _Step(0, len(ids), after, False)
    rows = conn.execute(
        delete(t)
        .where(among(conn, t.c.id, doomed), t.c.status == APPLIED)
        .returning(
            t.c.account_id, t.c.request_id, t.c.record_type, t.c.accepted, t.c.rejected, t.c.received_at
        )
    ).all()
    _fold(conn, rows)
    return _Step(len(rows), len(ids), after, len(ids) == limit)


def _fold(conn: Connection, rows: Sequence[Any]) -> None:
    """What the deleted queue rows leave: their counts per hour, and each merge's received time."""
    hours: dict[tuple[int, datetime, str], list[Any]] = defaultdict(lambda: [0, 0, 0, None])
    for row in rows:
        hour = row.received_at.replace(minute=0, second=0, microsecond=0)
        sums = hours[(row.account_id, hour, row.record_type)]
        sums[0] += 1
        sums[1] += row.accepted
        sums[2] += row.rejected
        sums[3] = row.received_at if sums[3] is None else max(sums[3], row.received_at)
        if row.record_type == MERGE:
            j = merge_jobs.c
            conn.execute(
                update(merge_jobs)
                .where(j.account_id == row.account_id, j.job_id == row.request_id)
                .values(received_at=row.received_at)
            )
    if not hours:
        return
    h = import_hours
    statement = upsert(conn, h)
    statement = statement.on_conflict_do_update(
        index_elements=[h.c.account_id, h.c.hour, h.c.record_type],
        set_={
            "requests": h.c.requests + statement.excluded.requests,
            "accepted": h.c.accepted + statement.excluded.accepted,
            "rejected": h.c.rejected + statement.excluded.rejected,
            "last_received_at": case(
                (
                    statement.excluded.last_received_at > h.c.last_received_at,
                    statement.excluded.last_received_at,
                ),
                else_=h.c.last_received_at,
            ),
        },
    )
    for (account_id, hour, record_type), (requests, accepted, rejected, last) in sorted(hours.items()):
        conn.execute(
            statement.values(
                account_id=account_id,
                hour=hour,
                record_type=record_type,
                requests=requests,
                accepted=accepted,
                rejected=rejected,
                last_received_at=last,
            )
        )


def _walk(
    conn: Connection,
    table: Table,
    when: Column[datetime],
    cutoff: datetime,
    after: int,
    limit: int,
    kept: ColumnElement[bool] | None = None,
) -> _Step:
    """Delete the rows of ``table`` after id ``after``, in id order (the order of their ``when``),
    up to the first at or after ``cutoff``, except those ``kept`` (the walk goes past them) and the
    table's newest row; at most ``limit`` rows are looked at."""
    if not lock_task(conn, PRUNING):
        return _Step(0, 0, after, True)
    keep = (kept if kept is not None else false()).label("kept")
    rows = conn.execute(
        select(table.c.id, when.label("when"), keep)
        .where(table.c.id > after)
        .order_by(table.c.id)
        .limit(limit)
    ).all()
    examined = list(takewhile(lambda row: row.when < cutoff, rows))
    newest = _newest(conn, table)
    # the newest row stays, and the walk passes it only once there is a newer one
    passed = [row for row in examined if row.id != newest]
    doomed = [row.id for row in passed if not row.kept]
    if doomed:
        conn.execute(delete(table).where(among(conn, table.c.id, doomed)))
    reached = passed[-1].id if passed else after
    return _Step(len(doomed), len(examined), reached, len(rows) == limit and len(examined) == len(rows))


def prune_errors(conn: Connection, cutoff: datetime, after: int = 0, limit: int = STEP) -> _Step:
    """Delete push errors recorded before ``cutoff`` (after id ``after``), oldest first."""
    return _walk(conn, push_errors, push_errors.c.created_at, cutoff, after, limit)


def prune_events(conn: Connection, cutoff: datetime, after: int = 0, limit: int = STEP) -> _Step:
    """Delete the tag's events applied before ``cutoff`` (after id ``after``), oldest first, except
    the ``identify`` and ``profile`` events profiles take the tag's data from."""
    e = tracking_events.c
    return _walk(conn, tracking_events, e.occurred_at, cutoff, after, limit, e.kind.in_(TAG_PROFILE_EVENTS))


def prune_webhooks(conn: Connection, cutoff: datetime, after: int = 0, limit: int = STEP) -> _Step:
    """Delete up to ``limit`` webhook events delivered or failed whose last attempt was due before
    ``cutoff`` (written before it too), with their attempts, oldest first on
    ``ix_webhook_events_due`` (``after`` is unused: no row is passed over). Pending events stay: a
    delivery under way, an event waiting for its retry or for its disabled endpoint."""
    if not lock_task(conn, PRUNING):
        return _Step(0, 0, after, True)
    e = webhook_events.c
    ids: list[int] = []
    for status in (DELIVERED, FAILED):
        done = (e.status == status) & (e.next_attempt_at < cutoff) & (e.created_at < cutoff)
        oldest = select(e.id).where(done).order_by(e.next_attempt_at).limit(limit - len(ids))
        ids += conn.execute(oldest).scalars()
        if len(ids) >= limit:
            break
    newest = _newest(conn, webhook_events)
    doomed = [i for i in ids if i != newest]
    if not doomed:
        return _Step(0, len(ids), after, False)
    # as they are now: an event replayed since it was read is pending again, and stays
    still = (e.status.in_((DELIVERED, FAILED)), e.next_attempt_at < cutoff)
    deleted = conn.execute(delete(webhook_events).where(among(conn, e.id, doomed), *still).returning(e.id))
    gone = list(deleted.scalars())
    if gone:
        a = webhook_attempts.c
        conn.execute(delete(webhook_attempts).where(among(conn, a.event, gone)))
    return _Step(len(gone), len(ids), after, len(ids) == limit)


class Pruner:
    """Prunes what is older than ``retention`` says, a pass every ``poll`` seconds (a thread of
    ``patron worker``); :meth:`prune` runs one pass (the benchmark and the tests call it too)."""

    def __init__(
        self,
        store: Store,
        retention: Retention,
        stop: threading.Event | None = None,
        poll: float = POLL,
        pause: float = PAUSE,
    ) -> None:
        self.store, self.retention, self.poll, self.pause = store, retention, poll, pause
        self.stop = stop or threading.Event()
        #: Where each walk has reached (by id), kept from pass to pass.
        self.cursors: dict[str, int] = {}
        self.thread = threading.Thread(target=self.run, name="patron-pruner", daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                pruned = self.prune()
            except Exception:
                log.exception("pruning failed; retrying")
                pruned = Pruned()
            if pruned.batches or pruned.errors or pruned.events or pruned.webhooks:
                log.info(
                    "pruned",
                    extra={
                        "batches": pruned.batches,
                        "errors": pruned.errors,
                        "events": pruned.events,
                        "webhooks": pruned.webhooks,
                        "pages": pruned.pages,
                    },
                )
            self.stop.wait(self.pause if pruned.more else self.poll)

    def prune(self, at: datetime | None = None) -> Pruned:
        """One pass at time ``at`` (now): each table in steps, then the freed pages given back."""
        at = at or now()
        r, pruned = self.retention, Pruned()
        for name, days, step in (
            ("batches", r.applied_days, prune_batches),
            ("errors", r.errors_days, prune_errors),
            ("events", r.events_days, prune_events),
            ("webhooks", r.webhooks_days, prune_webhooks),
        ):
            deleted, more = self._steps(step, at - timedelta(days=days), name)
            setattr(pruned, name, deleted)
            pruned.more |= more
        pruned.cursors = dict(self.cursors)
        if pruned.batches or pruned.errors or pruned.events or pruned.webhooks or pruned.more:
            pruned.pages, more = self._reclaim()
            pruned.more |= more
        return pruned

    def _steps(self, prune: Prune, cutoff: datetime, name: str) -> tuple[int, bool]:
        """Run ``prune`` in steps until it is done or the pass's bounds: rows deleted, and whether
        there is more to do."""
        deleted = examined = 0
        while not self.stop.is_set():
            after = self.cursors.get(name, 0)

            def work(conn: Connection, after: int = after) -> _Step:
                return prune(conn, cutoff, after)

            step = self.store.write_blocking(work)
            deleted += step.deleted
            examined += step.examined
            self.cursors[name] = step.reached
            if not step.full:
                return deleted, False
            if examined >= PASS_ROWS or step.examined == 0:  # bounded, or another worker prunes
                return deleted, True
            self.stop.wait(self.pause)
        return deleted, True

    def _reclaim(self) -> tuple[int, bool]:
        """Give free pages back in steps: how many, and whether some may be left."""
        given = 0
        while not self.stop.is_set() and given < PASS_PAGES:
            step = self.store.reclaim(VACUUM_STEP)
            given += step
            if step < VACUUM_STEP:
                return given, False
            self.stop.wait(self.pause)
        return given, True
