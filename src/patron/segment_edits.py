"""Saving a segment, the one way the API, the CLI and the console do it: a new segment (or new
rules for one) is written and the first step of its build queued in the same transaction, so the
worker builds it in order with the account's pushes (:mod:`patron.segments`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from patron.profiles.segments import members
from patron.profiles.segments import rules as r
from patron.segments import queue_build


def create(conn: Connection, account_id: int, name: str, rule: r.Rule, at: datetime) -> int:
    """A new segment, its build queued; its id (``members.TooManySegments`` past the most)."""
    segment_id = members.create(conn, account_id, name, rule, at)
    queue_build(conn, account_id, segment_id, 1, at)
    return segment_id


def change(conn: Connection, account_id: int, segment_id: int, name: str, rule: r.Rule, at: datetime) -> bool:
    """New name and rules, the segment built again; whether there was such a segment."""
    version = members.change(conn, account_id, segment_id, name, rule, at)
    if version is not None:
        queue_build(conn, account_id, segment_id, version, at)
    return version is not None
