"""Webhook replays run by the worker: the queue kind ``webhook_replay`` sends an endpoint's events of
a time range again a step at a time (``endpoints.REPLAY_STEP`` events in a round of its own, one
bounded write, then the next step queued), so a replay of millions of events never holds the writer
for long and applies in order with the account's pushes."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from sqlalchemy import Connection

from patron.ingest.queue import enqueue_operation
from patron.model.rounds import Op, QueueKind, Registry, Round
from patron.webhooks import endpoints

#: The queue kind that replays webhook events.
REPLAY = "webhook_replay"


def replay(
    conn: Connection, account_id: int, endpoint_id: str, since: datetime, until: datetime, at: datetime
) -> int:
    """Queue a replay of the endpoint's events written in [since, until) (the one way the API, the CLI
    and the console ask for one); how many there are (``NotFound``: no such endpoint of the account)."""
    count, job = endpoints.replay_start(conn, account_id, endpoint_id, since, until, at)
    enqueue_operation(conn, account_id, None, str(uuid.uuid4()), REPLAY, job, at)
    return count


def apply_replay(round: Round, op: Op) -> None:
    job = endpoints.replay_step(round.conn, round.account_id, msgspec.convert(op.record, endpoints.Replaying))
    if job is not None:
        enqueue_operation(round.conn, round.account_id, None, str(uuid.uuid4()), REPLAY, job, round.at)


def register(kinds: Registry) -> None:
    """The ``webhook_replay`` kind (alone: one bounded step per round)."""
    kinds.add(QueueKind(REPLAY, apply_replay, alone=True))
