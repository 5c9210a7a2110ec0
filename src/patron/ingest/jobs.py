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
    queued = batch_status(conn, account_id, job_id)
    if queued is None or queued.record_type != MERGE:
        return None
    j = merge_jobs
    row = conn.execute(select(j).where(j.c.account_id == account_id, j.c.job_id == job_id)).first()
    if row is None:
        return MergeJob(job_id, "queued", None, [], None, queued.timestamp_received, None)
    merged = msgspec.json.decode(row.merged, type=list[str])
    completed = row.completed_at.isoformat()
    return MergeJob(job_id, row.status, row.survivor, merged, row.error, queued.timestamp_received, completed)
