"""Segments kept current by the worker: the queue kind ``segment`` that builds a new segment (or a
segment with new rules) a step at a time, the round's hook that re-evaluates the profiles each round
touched, and the thread of ``patron worker`` that re-evaluates segments whose rules read "now".

A segment is built by ``segment`` rows of the import queue: each evaluates the next
``members.STEP`` profiles in a round of its own (one bounded write) and queues the next step, so a
segment over millions of profiles never holds the writer for long and applies in order with the
account's pushes. The hook (:func:`after_round`) runs at the end of each account's part of every
round, in its transaction: the touched profiles (and those the round merged away) are evaluated
against each of the account's segments, and the entries and exits written with them.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime

import msgspec
from sqlalchemy import Connection

from patron.accounts import now
from patron.ingest.queue import enqueue_operation
from patron.model.rounds import Op, QueueKind, Registry, Round
from patron.profiles.segments import members
from patron.profiles.segments import rules as r
from patron.store import Store

log = logging.getLogger("patron.segments")
#: The queue kind that builds segments.
SEGMENT = "segment"
#: The queue kind that adds a segment's members to a static list.
EXPORT = "segment_export"
#: Seconds between checks of a segment whose rules read "now" (``-90d``...).
RECHECK = 3600.0


class Build(msgspec.Struct):
    """One step of building a segment: its version (a step of older rules does nothing) and the
    moment its relative conditions are read at (None: when the step applies). With ``since`` (the
    segment's last check), the step is a check of a relative segment: only the profiles whose dates
    crossed a line since then are evaluated (:func:`members.recheck_step`)."""

    segment: int
    version: int
    now: str | None = None
    since: str | None = None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def queue_build(
    conn: Connection,
    account_id: int,
    segment_id: int,
    version: int,
    at: datetime,
    moment: datetime | None = None,
    since: datetime | None = None,
) -> str:
    """Queue the (next) step of building a segment (or of checking it, with ``since``), never refused
    for a backlog; its request id."""
    request_id = str(uuid.uuid4())
    body = Build(segment_id, version, _iso(moment), _iso(since))
    enqueue_operation(conn, account_id, None, request_id, SEGMENT, body, at)
    return request_id


def create(conn: Connection, account_id: int, name: str, rule: r.Rule, at: datetime) -> int:
    """A new segment, its build queued in the same transaction (the one way the API, the CLI and the
    console save one); its id (``members.TooManySegments`` past the most)."""
    segment_id = members.create(conn, account_id, name, rule, at)
    queue_build(conn, account_id, segment_id, 1, at)
    return segment_id


def change(conn: Connection, account_id: int, segment_id: int, name: str, rule: r.Rule, at: datetime) -> bool:
    """New name and rules, the segment built again; whether there was such a segment."""
    version = members.change(conn, account_id, segment_id, name, rule, at)
    if version is not None:
        queue_build(conn, account_id, segment_id, version, at)
    return version is not None


def apply_build(round: Round, op: Op) -> None:
    body = msgspec.convert(op.record, Build)
    moment = datetime.fromisoformat(body.now) if body.now else round.at
    conn, account_id = round.conn, round.account_id
    if body.since is not None:
        since = datetime.fromisoformat(body.since)
        if members.recheck_step(conn, account_id, body.segment, body.version, since, moment, round.at):
            queue_build(conn, account_id, body.segment, body.version, round.at, moment)
        return
    if members.build_step(conn, account_id, body.segment, body.version, round.at, moment):
        queue_build(conn, account_id, body.segment, body.version, round.at, moment)


def export(
    conn: Connection, account_id: int, segment_id: int, list_id: str, at: datetime
) -> members.Export | None:
    """Export the segment's members (as they are now) to the static list ``list_id``, made now if
    new: the worker adds them in steps of ``members.EXPORT_STEP``, in order with the account's
    pushes; None: no such segment."""
    job = members.export_start(conn, account_id, segment_id, list_id, at)
    if job is not None:
        enqueue_operation(conn, account_id, None, str(uuid.uuid4()), EXPORT, job, at)
    return job


def apply_export(round: Round, op: Op) -> None:
    job = members.export_step(
        round.conn, round.account_id, msgspec.convert(op.record, members.Export), round.at
    )
    if job is not None:
        enqueue_operation(round.conn, round.account_id, None, str(uuid.uuid4()), EXPORT, job, round.at)


def after_round(round: Round) -> None:
    """Keep the account's segments current for the profiles the round touched, made or merged away;
    build again those asking for a product attribute the round's products gained or lost."""
    changed = round.touched | round.created | round.updated | round.merged
    members.keep_current(round.conn, round.account_id, changed, round.at)
    if round.attributes:
        for segment_id, version in members.rebuild_for_attributes(
            round.conn, round.account_id, round.attributes
        ):
            queue_build(round.conn, round.account_id, segment_id, version, round.at)


def recheck(conn: Connection, moment: datetime, every: float = RECHECK) -> int:
    """Queue a check, as of ``moment``, of each relative segment last checked more than ``every``
    seconds before it (the profiles that crossed a line since: no full scan where indexes can say
    who); how many were queued."""
    marked = members.mark_for_check(conn, moment, every)
    for account_id, segment_id, version, since in marked:
        queue_build(conn, account_id, segment_id, version, moment, moment, since)
    return len(marked)


class Rechecker:
    """Re-evaluates relative segments every ``every`` seconds (a thread of ``patron worker``)."""

    def __init__(
        self, store: Store, stop: threading.Event, every: float = RECHECK, poll: float = 60.0
    ) -> None:
        self.store, self.stop, self.every, self.poll = store, stop, every, poll
        self.thread = threading.Thread(target=self.run, name="patron-segments", daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.store.write_blocking(lambda conn: recheck(conn, now(), self.every))
            except Exception:
                log.exception("re-evaluating relative segments failed; retrying")
            self.stop.wait(self.poll)


def register(kinds: Registry) -> None:
    """The ``segment`` and ``segment_export`` kinds (alone: one bounded step per round) and the
    round's hook."""
    kinds.add(QueueKind(SEGMENT, apply_build, alone=True))
    kinds.add(QueueKind(EXPORT, apply_export, alone=True))
    kinds.after(after_round)
