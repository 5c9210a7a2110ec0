"""What the console's segments pages read, each a bounded page found by an index: a segment's members
by profile id (a seek on ``(account_id, segment_id, profile)``), its entries and exits newest first (a
seek on ``(account_id, segment_id, id)``)."""

from __future__ import annotations

import json
from datetime import datetime

import msgspec
from sqlalchemy import Connection, select, tuple_

from patron.console.pages_reads import PAGE, Member
from patron.profiles.segments import members
from patron.store.schema import (
    profiles,
    segment_changes,
    segment_members,
)


class Change(msgspec.Struct):
    row: int
    kind: str  # segment_enter | segment_exit
    profile: str
    at: datetime


class Segment(msgspec.Struct):
    view: members.SegmentView
    #: The rules as JSON text, indented.
    text: str


def segments_page(conn: Connection, account_id: int, offset: int) -> tuple[list[members.SegmentView], bool]:
    """A page of the account's segments in creation order, and whether there are more."""
    found = members.read(conn, account_id, limit=PAGE + 1, offset=offset)
    return found[:PAGE], len(found) > PAGE


def one_segment(conn: Connection, account_id: int, segment_id: int) -> Segment | None:
    found = members.read(conn, account_id, segment_id=segment_id)
    if not found:
        return None
    return Segment(found[0], json.dumps(found[0].rules, indent=2, ensure_ascii=False))


def segment_members_page(
    conn: Connection, account_id: int, segment_id: int, after: str | None
) -> tuple[list[Member], str | None]:
    """A page of a segment's members in profile id order (after the profile ``after``), with their
    emails and when they entered, and where the next page starts."""
    m, p = segment_members.c, profiles.c
    query = (
        select(m.profile, m.created_at, p.email)
        .select_from(
            segment_members.outerjoin(profiles, (p.account_id == m.account_id) & (p.profile_id == m.profile))
        )
        .where(m.account_id == account_id, m.segment_id == segment_id)
    )
    if after:
        query = query.where(m.profile > after)
    rows = conn.execute(query.order_by(m.profile).limit(PAGE + 1)).all()
    found = [Member(r.profile, r.email, r.created_at) for r in rows[:PAGE]]
    return found, (found[-1].profile if len(rows) > PAGE else None)


def changes_page(
    conn: Connection, account_id: int, segment_id: int, before: int | None
) -> tuple[list[Change], int | None]:
    """A page of a segment's entries and exits, newest first (before the row ``before`` in that
    order: by time, then by row, the order of the segment's index), and where the next page starts."""
    c = segment_changes.c
    query = select(c.id, c.event, c.profile, c.created_at).where(
        c.account_id == account_id, c.segment_id == segment_id
    )
    if before is not None:
        last = conn.execute(select(c.created_at, c.id).where(c.account_id == account_id, c.id == before))
        if (row := last.first()) is not None:
            query = query.where(tuple_(c.created_at, c.id) < tuple_(*row))
    rows = conn.execute(query.order_by(c.created_at.desc(), c.id.desc()).limit(PAGE + 1)).all()
    found = [Change(*r) for r in rows[:PAGE]]
    return found, (found[-1].row if len(rows) > PAGE else None)
