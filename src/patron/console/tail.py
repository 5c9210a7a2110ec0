"""What the console's Live page reads, a second at a time: what happened to an account since the last
look, as lines. Every look is a few indexed queries bounded by what arrived since the last one: the
requests queued (pushes, tag beacons, operations) on the index ``(account_id, status)`` after the last
id seen, the push errors on ``(account_id, id)``, and the requests seen queued that have since been
applied, by their ids."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from sqlalchemy import Connection, func, select

from patron.console.pushes import OPERATIONS
from patron.ingest.queue import APPLIED, ERROR, QUEUED, unpack
from patron.store.schema import import_batches, push_errors, visitors
from patron.tracking.events import TRACK

#: The most rows of each source one look reads (the next look goes on from there).
MOST = 100
#: The most queued requests followed until they are applied.
FOLLOWED = 1000
#: What a line is about.
PUSH, BEACON, OPERATION, APPLIED_LINE, REJECTED = "push", "beacon", "operation", "applied", "rejected"
KINDS = (PUSH, BEACON, OPERATION, APPLIED_LINE, REJECTED)
_CURSOR = re.compile(r"^(\d{1,18})\.(\d{1,18})$")


class Cursor(msgspec.Struct):
    """The last request and push error seen."""

    batch: int
    error: int

    @property
    def token(self) -> str:
        """The cursor as an event id: the browser sends it back when it reconnects."""
        return f"{self.batch}.{self.error}"

    @classmethod
    def parse(cls, token: str | None) -> Cursor | None:
        found = _CURSOR.match(token or "")
        return cls(int(found.group(1)), int(found.group(2))) if found else None


class Line(msgspec.Struct):
    kind: str
    at: str  # ISO 8601
    text: str
    identity: str  # ids, emails, cookie ids: what the page's identity filter matches
    request_id: str  # the request the line is about
    profile: str | None = None


class Look(msgspec.Struct):
    lines: list[Line]
    cursor: Cursor
    followed: dict[int, str]  # queued requests (id: identity) still to be seen applied


def start(conn: Connection) -> Cursor:
    """From now on: the last ids of the whole store (each the end of a primary key)."""
    batch = conn.execute(select(func.max(import_batches.c.id))).scalar()
    error = conn.execute(select(func.max(push_errors.c.id))).scalar()
    return Cursor(int(batch or 0), int(error or 0))


def _identity(record: Any) -> str:
    """The ids and emails of a record (and of its customer or identity), for the identity filter."""
    if not isinstance(record, dict):
        return ""
    found: list[str] = []
    for holder in (record, record.get("customer"), record.get("identity"), record.get("profile")):
        if isinstance(holder, dict):
            found += [str(holder[k]) for k in ("id", "email", "customer_id", "profile_id") if holder.get(k)]
    return " ".join(dict.fromkeys(found))


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _queued_line(conn: Connection, account_id: int, row: Any) -> Line:
    at = row.received_at.isoformat()
    records = unpack(row.records)
    if row.record_type == TRACK:
        beacon = records[0].get("beacon", {}) if records and isinstance(records[0], dict) else {}
        cid = str(beacon.get("cid", ""))
        profile = conn.execute(
            select(visitors.c.profile).where(visitors.c.account_id == account_id, visitors.c.cid == cid)
        ).scalar()
        text = f"Tag beacon {beacon.get('type', '?')}" + (f" on {beacon['url']}" if beacon.get("url") else "")
        return Line(BEACON, at, text, cid, row.request_id, profile)
    if row.record_type in OPERATIONS:
        body = records[0] if records else {}
        identity = _identity(body) or " ".join(
            str(v) for v in (body.values() if isinstance(body, dict) else []) if isinstance(v, str)
        )
        return Line(OPERATION, at, f"Operation {row.record_type} queued", identity[:500], row.request_id)
    kind = row.record_type.replace("_", " ")
    text = f"Push of {_plural(row.accepted + row.rejected, kind)}: {row.accepted:,} accepted"
    if row.rejected:
        text += f", {row.rejected:,} rejected"
    identity = " ".join(i for i in (_identity(r) for r in records) if i)
    return Line(PUSH, at, text, identity[:2000], row.request_id)


def _applied_line(row: Any, identity: str) -> Line:
    what = row.record_type.replace("_", " ")
    text = f"Applied {_plural(row.applied or 0, what)} of {row.accepted:,}"
    if row.record_type in OPERATIONS:
        text = f"Operation {row.record_type} applied"
    at = row.applied_at.isoformat() if row.applied_at else ""
    return Line(APPLIED_LINE, at, text, identity, row.request_id)


def look(conn: Connection, account_id: int, cursor: Cursor, followed: dict[int, str]) -> Look:
    """What happened to the account after ``cursor``, oldest first, and where the next look begins."""
    b, e = import_batches.c, push_errors.c
    lines: list[tuple[int, Line]] = []  # (order, line): requests by id, then errors
    following = dict(followed)
    arrived: list[Any] = []
    for status in (QUEUED, APPLIED):  # each a range of the index (account_id, status, id)
        arrived += conn.execute(
            select(b.id, b.request_id, b.record_type, b.accepted, b.rejected, b.status, b.records)
            .add_columns(b.received_at, b.applied, b.applied_at)
            .where(b.account_id == account_id, b.status == status, b.id > cursor.batch)
            .order_by(b.id)
            .limit(MOST)
        ).all()
    arrived.sort(key=lambda row: row.id)
    arrived = arrived[:MOST]
    last_batch = arrived[-1].id if arrived else cursor.batch
    for row in arrived:
        line = _queued_line(conn, account_id, row)
        lines.append((0, line))
        if row.record_type != TRACK and row.status == QUEUED:
            following[row.id] = line.identity[:500]
        elif row.record_type != TRACK and row.accepted:  # applied before this look
            lines.append((1, _applied_line(row, line.identity[:500])))
    if following:
        for row in conn.execute(
            select(b.id, b.request_id, b.record_type, b.accepted, b.applied, b.applied_at).where(
                b.id.in_(list(following)), b.status == APPLIED
            )
        ):
            lines.append((1, _applied_line(row, following.pop(row.id))))
    while len(following) > FOLLOWED:  # the oldest are let go
        del following[min(following)]
    errors = conn.execute(  # warnings too (a range of the index), so that the cursor passes them
        select(
            e.id,
            e.request_id,
            e.record_type,
            e.record_id,
            e.error_path,
            e.error_message,
            e.created_at,
            e.severity,
        )
        .where(e.account_id == account_id, e.id > cursor.error)
        .order_by(e.id)
        .limit(MOST)
    ).all()
    last_error = errors[-1].id if errors else cursor.error
    for row in errors:
        if row.severity != ERROR:
            continue
        text = f"Rejected {row.record_type.replace('_', ' ')} at {row.error_path}: {row.error_message}"
        lines.append(
            (2, Line(REJECTED, row.created_at.isoformat(), text, row.record_id or "", row.request_id))
        )
    return Look(
        [line for _, line in sorted(lines, key=lambda x: x[0])], Cursor(last_batch, last_error), following
    )
