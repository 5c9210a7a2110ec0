"""What became of a queued merge (``GET /v2/merge-profile/{job_id}``): the queue says whether it
has run, the profiles' merge jobs how it ended."""

from __future__ import annotations

import msgspec
from sqlalchemy import Connection, select

from patron.ingest.queue import batch_status
from patron.profiles.operations import MERGE
from patron.store.schema import merge_jobs


class MergeJob(msgspec.Struct):
    """A merge job (an extension: Ometria documents no way to read one)."""

    id: str
    status: str  # queued | completed | failed
    survivor: str | None
    merged: list[str]
    error: str | None
    timestamp_created: str
    timestamp_completed: str | None


def merge_job(conn: Connection, account_id: int, job_id: str) -> MergeJob | None:
    """The job, from its queued row and its outcome; once the row is pruned (``patron.retention``),
    from its outcome alone, which then holds when it was received."""
    queued = batch_status(conn, account_id, job_id)
    if queued is not None and queued.record_type != MERGE:
        return None
    j = merge_jobs
    row = conn.execute(select(j).where(j.c.account_id == account_id, j.c.job_id == job_id)).first()
    if queued is None:
        if row is None or row.received_at is None:
            return None
        received = row.received_at.isoformat()
    else:
        received = queued.timestamp_received
    if row is None:
        return MergeJob(job_id, "queued", None, [], None, received, None)
    merged = msgspec.json.decode(row.merged, type=list[str])
    completed = row.completed_at.isoformat()
    return MergeJob(job_id, row.status, row.survivor, merged, row.error, received, completed)
