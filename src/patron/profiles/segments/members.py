"""Segments as stored: their rows, their members, and each entry and exit (``segment_enter`` /
``segment_exit``), for ``GET /v2/segments/{id}/changes`` and the profile's timeline.

Membership changes only through :func:`evaluate`: the profiles it is given are evaluated against the
segment's rule, and the difference with the members kept is written (members, changes and the
segment's ``size``) in the caller's transaction. A new segment (or new rules) is built in steps of
:data:`STEP` profiles by :func:`build_step`; the worker keeps the touched profiles current after each
round (:func:`keep_current`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

import msgspec
from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from patron.errors import Conflict, FieldError
from patron.profiles.segments import evaluate
from patron.profiles.segments import rules as r
from patron.store import among, chunks, insert_rows, lock_account
from patron.store.schema import profiles, segment_changes, segment_members, segments
from patron.webhooks import outbox

ENTER: Final = "segment_enter"
EXIT: Final = "segment_exit"
BUILDING: Final = "building"
READY: Final = "ready"
#: The most segments one account may have.
MAX_SEGMENTS: Final = 100
#: How many profiles one step of building a segment evaluates (one bounded write).
STEP: Final = 20_000
#: Past every internal id.
MAX_ID: Final = 2**63 - 1


class TooManySegments(Conflict):
    def __init__(self) -> None:
        message = f"the account has {MAX_SEGMENTS} segments, the most it may have"
        super().__init__(message, errors=[FieldError("name", message)])


class SegmentView(msgspec.Struct, tag_field="@type", tag="segment"):
    """A segment as the API shows it: ``status`` is ``building`` until every profile was evaluated
    against its current rules, then ``ready``."""

    id: str
    name: str
    rules: dict[str, Any]
    size: int
    status: str
    timestamp_created: str
    timestamp_updated: str
    timestamp_checked: str | None = None


class SegmentChange(msgspec.Struct, rename={"kind": "type"}):
    kind: str  # segment_enter | segment_exit
    segment_id: str
    profile_id: str
    timestamp: str


def _view(row: Any) -> SegmentView:
    return SegmentView(
        id=str(row.id),
        name=row.name,
        rules=msgspec.json.decode(row.rules),
        size=int(row.size),
        status=row.status,
        timestamp_created=r.stamp(row.created_at),
        timestamp_updated=r.stamp(row.updated_at),
        timestamp_checked=r.stamp(row.checked_at) if row.checked_at else None,
    )


def segment_key(value: str) -> int | None:
    """A public segment id as the internal one (None: not one)."""
    return int(value) if value.isdigit() and len(value) < 19 else None


# writes -------------------------------------------------------------------------------------------


def create(conn: Connection, account_id: int, name: str, rule: r.Rule, at: datetime) -> int:
    """A new segment (to be built); :class:`TooManySegments` past :data:`MAX_SEGMENTS`."""
    held = conn.execute(select(func.count()).where(segments.c.account_id == account_id)).scalar_one()
    if held >= MAX_SEGMENTS:
        raise TooManySegments()
    values = {"account_id": account_id, "name": name, "rules": r.dump(rule), "relative": r.is_relative(rule)}
    row = conn.execute(
        insert(segments)
        .values(**values, version=1, status=BUILDING, cursor=0, size=0, created_at=at, updated_at=at)
        .returning(segments.c.id)
    )
    return int(row.scalar_one())


def change(
    conn: Connection, account_id: int, segment_id: int, name: str, rule: r.Rule, at: datetime
) -> int | None:
    """New name and rules: the segment is built again (its members stay until evaluated); its new
    version (None: no such segment)."""
    s = segments
    found = conn.execute(
        update(s)
        .where(s.c.account_id == account_id, s.c.id == segment_id)
        .values(
            name=name,
            rules=r.dump(rule),
            relative=r.is_relative(rule),
            version=s.c.version + 1,
            status=BUILDING,
            cursor=0,
            updated_at=at,
        )
        .returning(s.c.version)
    ).first()
    return None if found is None else int(found.version)


def remove(conn: Connection, account_id: int, segment_id: int) -> bool:
    """Delete a segment with its members and changes."""
    lock_account(conn, account_id)  # not while the worker keeps it current
    for table in (segment_members, segment_changes):
        conn.execute(delete(table).where(table.c.account_id == account_id, table.c.segment_id == segment_id))
    gone = conn.execute(
        delete(segments).where(segments.c.account_id == account_id, segments.c.id == segment_id)
    )
    return bool(gone.rowcount)


def forget(conn: Connection, account_id: int, profile_ids: list[str]) -> None:
    """Take the profiles out of every segment of the account with no exit recorded, and delete
    their entries and exits (an anonymisation)."""
    m, c = segment_members, segment_changes
    for chunk in chunks(sorted(profile_ids)):
        # counted here: grouped by segment, SQLite would read every member of the account in that order
        held = Counter(
            conn.execute(
                select(m.c.segment_id).where(m.c.account_id == account_id, among(conn, m.c.profile, chunk))
            ).scalars()
        )
        for segment_id, n in held.items():
            conn.execute(update(segments).where(segments.c.id == segment_id).values(size=segments.c.size - n))
        for table in (m, c):
            conn.execute(
                delete(table).where(table.c.account_id == account_id, among(conn, table.c.profile, chunk))
            )


#: A segment's entries and exits: segment id -> (profiles entered, profiles left).
Moves = dict[int, tuple[set[str], set[str]]]


def _apply(conn: Connection, account_id: int, moves: Moves, at: datetime) -> int:
    """Write segments' entries and exits: their members, a change for each, the webhooks' events and
    the segments' sizes, in one statement each for all the segments (exits, in one per segment);
    returns how many."""
    m, c, s = segment_members, segment_changes, segments
    entries = [(sid, pid) for sid, (entered, _) in moves.items() for pid in sorted(entered)]
    exits = [(sid, pid) for sid, (_, left) in moves.items() for pid in sorted(left)]
    if not entries and not exits:
        return 0
    fixed = {"account_id": account_id, "created_at": at}
    insert_rows(conn, m, fixed, ("segment_id", "profile"), entries)
    for sid, (_, left) in moves.items():
        for chunk in chunks(sorted(left)):
            conn.execute(
                delete(m).where(
                    m.c.account_id == account_id, m.c.segment_id == sid, among(conn, m.c.profile, chunk)
                )
            )
    changed = [(sid, pid, ENTER) for sid, pid in entries] + [(sid, pid, EXIT) for sid, pid in exits]
    told = outbox.wants_changes(conn, account_id)
    after = _last_change(conn) if told else 0
    insert_rows(conn, c, fixed, ("segment_id", "profile", "event"), changed)
    if told:  # webhooks subscribed to them are told, in this transaction: the deliverer reads these rows
        outbox.emit_changes(conn, account_id, after, _last_change(conn), len(changed), at)
    conn.execute(
        update(s).where(s.c.id == bindparam("sid")).values(size=s.c.size + bindparam("delta")),
        [
            {"sid": sid, "delta": len(entered) - len(left)}
            for sid, (entered, left) in moves.items()
            if entered or left
        ],
    )
    return len(changed)


def _last_change(conn: Connection) -> int:
    """The highest id of ``segment_changes`` (the account's entries and exits written next come after
    it: the account is held by its round, or by the step writing them)."""
    return int(conn.execute(select(func.max(segment_changes.c.id))).scalar() or 0)


def evaluate_among(
    conn: Connection,
    account_id: int,
    segment_id: int,
    rule: r.Rule,
    ids: Collection[str],
    at: datetime,
    now: datetime,
) -> tuple[set[str], set[str]]:
    """Evaluate the profiles ``ids`` against the segment and write the difference; (entered, left)."""
    if not ids:
        return set(), set()
    m = segment_members
    [meets] = evaluate.matching_each(conn, account_id, [rule], now, ids)
    held = set(
        conn.execute(
            select(m.c.profile).where(
                m.c.account_id == account_id,
                m.c.segment_id == segment_id,
                among(conn, m.c.profile, list(ids)),
            )
        ).scalars()
    )
    entered, left = meets - held, held - meets
    _apply(conn, account_id, {segment_id: (entered, left)}, at)
    return entered, left


@lru_cache(maxsize=1024)
def _rule(text: str) -> r.Rule:
    """A stored rule, read once (the worker reads every segment's rules every round)."""
    return r.load(text)


def build_step(
    conn: Connection, account_id: int, segment_id: int, version: int, at: datetime, now: datetime
) -> bool:
    """Evaluate the next :data:`STEP` profiles of a segment being built (as of ``now``); whether
    more remain. A step of an older version (the rules changed since) does nothing."""
    lock_account(conn, account_id)  # in step with the worker's rounds on the account
    s, p = segments, profiles
    row = conn.execute(
        select(s.c.rules, s.c.version, s.c.status, s.c.cursor, s.c.size).where(
            s.c.account_id == account_id, s.c.id == segment_id
        )
    ).first()
    if row is None or row.version != version or row.status != BUILDING:
        return False
    upto = conn.execute(
        select(p.c.id)
        .where(p.c.account_id == account_id, p.c.id > row.cursor)
        .order_by(p.c.id)
        .offset(STEP - 1)
        .limit(1)
    ).scalar()
    span = (row.cursor, upto if upto is not None else MAX_ID)
    rule = _rule(row.rules)
    entered, left = evaluate.differences(conn, account_id, segment_id, rule, now, span, empty=row.size == 0)
    _apply(conn, account_id, {segment_id: (entered, left)}, at)
    if upto is None:  # the last step
        conn.execute(update(s).where(s.c.id == segment_id).values(status=READY, checked_at=now))
        return False
    conn.execute(update(s).where(s.c.id == segment_id).values(cursor=upto))
    return True


def keep_current(conn: Connection, account_id: int, profile_ids: Collection[str], at: datetime) -> int:
    """Evaluate the profiles a round touched against every segment of the account (one query for
    all segments per chunk of profiles); returns how many entries and exits it wrote."""
    if not profile_ids:
        return 0
    s, m = segments, segment_members
    held = conn.execute(select(s.c.id, s.c.rules).where(s.c.account_id == account_id).order_by(s.c.id)).all()
    if not held:
        return 0
    rules = [_rule(row.rules) for row in held]
    written = 0
    for chunk in chunks(sorted(profile_ids)):
        meets = evaluate.matching_each(conn, account_id, rules, at, chunk)
        kept: dict[int, set[str]] = {row.id: set() for row in held}
        for segment_id, profile in conn.execute(
            select(m.c.segment_id, m.c.profile).where(
                m.c.account_id == account_id, among(conn, m.c.profile, chunk)
            )
        ):
            kept.setdefault(segment_id, set()).add(profile)
        moves = {
            row.id: (meet - kept[row.id], kept[row.id] - meet) for row, meet in zip(held, meets, strict=True)
        }
        written += _apply(conn, account_id, moves, at)
    return written


def rebuild_for_attributes(
    conn: Connection, account_id: int, changed: Collection[tuple[str, str]]
) -> list[tuple[int, int]]:
    """The segments whose rules ask for a product attribute in ``changed`` (a product gained or lost
    it, so any of its buyers may move) are built again in full, from their first profile; (segment,
    version) of each that was ready, whose build the caller queues (one under way goes on from the
    start)."""
    s = segments
    rows = conn.execute(
        select(s.c.id, s.c.version, s.c.status, s.c.rules).where(s.c.account_id == account_id)
    ).all()
    wanted = set(changed)
    again = [
        row
        for row in rows
        if any(
            isinstance(node, r.OrdersCondition)
            and node.attribute is not None
            and (node.attribute.type, node.attribute.id) in wanted
            for node in r.walk(_rule(row.rules))
        )
    ]
    if again:
        conn.execute(update(s).where(s.c.id.in_([row.id for row in again])).values(status=BUILDING, cursor=0))
    return [(row.id, row.version) for row in again if row.status == READY]


def recheck_step(
    conn: Connection,
    account_id: int,
    segment_id: int,
    version: int,
    since: datetime,
    now: datetime,
    at: datetime,
) -> bool:
    """Evaluate, as of ``now``, the profiles of a relative segment that time alone may have moved in
    or out since ``since`` (its last check), found through the indexes (:func:`evaluate.crossed`);
    True when that cannot be done (a condition no index serves, or more than :data:`STEP` profiles
    crossed): the segment is then marked to be built again in full, which the caller queues."""
    lock_account(conn, account_id)  # in step with the worker's rounds on the account
    s = segments
    row = conn.execute(
        select(s.c.rules, s.c.version, s.c.status).where(s.c.account_id == account_id, s.c.id == segment_id)
    ).first()
    if row is None or row.version != version or row.status != READY:
        return False  # gone, changed (its build reads the present) or being built
    rule = r.load(row.rules)
    crossed = evaluate.crossed(conn, account_id, rule, since, now, STEP)
    if crossed is None or len(crossed) > STEP:
        conn.execute(update(s).where(s.c.id == segment_id).values(status=BUILDING, cursor=0))
        return True
    for chunk in chunks(sorted(crossed)):
        evaluate_among(conn, account_id, segment_id, rule, chunk, at, now)
    conn.execute(update(s).where(s.c.id == segment_id).values(checked_at=now))
    return False


def mark_for_check(
    conn: Connection, now: datetime, every: float, limit: int = 10
) -> list[tuple[int, int, int, datetime]]:
    """Relative segments (their rules read "now") last checked more than ``every`` seconds before
    ``now``: their check time moved to ``now`` (so they are not marked again meanwhile); (account,
    segment, version, the time of the check before) of each."""
    s = segments
    due = conn.execute(
        select(s.c.account_id, s.c.id, s.c.version, s.c.checked_at)
        .where(s.c.relative.is_(True), s.c.status == READY)
        .order_by(s.c.checked_at)
        .limit(limit)
    ).all()
    marked = []
    for row in due:
        if (now - row.checked_at).total_seconds() < every:
            continue
        conn.execute(update(s).where(s.c.id == row.id).values(checked_at=now))
        marked.append((row.account_id, row.id, row.version, row.checked_at))
    return marked


# reads --------------------------------------------------------------------------------------------


def read(
    conn: Connection, account_id: int, *, segment_id: int | None = None, limit: int = 1, offset: int = 0
) -> list[SegmentView]:
    """A page of segments (or the one ``segment_id`` names), in creation order."""
    s = segments
    query = select(s).where(s.c.account_id == account_id)
    if segment_id is not None:
        query = query.where(s.c.id == segment_id)
    return [_view(row) for row in conn.execute(query.order_by(s.c.id).limit(limit).offset(offset))]


def rules_of(conn: Connection, account_id: int, segment_id: int) -> r.Rule | None:
    text = conn.execute(
        select(segments.c.rules).where(segments.c.account_id == account_id, segments.c.id == segment_id)
    ).scalar()
    return None if text is None else r.load(text)


def member_ids(conn: Connection, account_id: int, segment_id: int, limit: int, offset: int) -> list[str]:
    """A page of the segment's members' profile ids, in profile id order (the members' key: the
    offset is walked on the key alone)."""
    m = segment_members
    query = (
        select(m.c.profile)
        .where(m.c.account_id == account_id, m.c.segment_id == segment_id)
        .order_by(m.c.profile)
        .limit(limit)
        .offset(offset)
    )
    return list(conn.execute(query).scalars())


def changes(
    conn: Connection, account_id: int, segment_id: int, since: datetime | None, limit: int, offset: int
) -> list[SegmentChange]:
    """A page of the segment's entries and exits in time order (then by row), on the segment's index
    by time: nothing sorted, ``since`` a range of it."""
    c = segment_changes
    where = [c.c.account_id == account_id, c.c.segment_id == segment_id]
    if since is not None:
        where.append(c.c.created_at >= since)
    rows = conn.execute(select(c).where(*where).order_by(c.c.created_at, c.c.id).limit(limit).offset(offset))
    return [
        SegmentChange(row.event, str(row.segment_id), row.profile, r.stamp(row.created_at)) for row in rows
    ]


def member_documents(
    conn: Connection, account_id: int, segment_id: int, limit: int, offset: int
) -> list[str]:
    """A page of the segment's members' profile documents (JSON), in profile id order: the page's
    ids are found on the members' key first, then their documents."""
    p = profiles
    page = member_ids(conn, account_id, segment_id, limit, offset)
    documents = select(p.c.profile_id, p.c.data).where(
        p.c.account_id == account_id, among(conn, p.c.profile_id, page)
    )
    found = {row.profile_id: row.data for row in conn.execute(documents)}
    return [found[profile] for profile in page if profile in found]


#: How many members one step of an export adds to the list (one bounded write).
EXPORT_STEP: Final = 2_000


def export_start(
    conn: Connection, account_id: int, segment_id: int, list_id: str, at: datetime
) -> Export | None:
    """Begin an export of the segment's members to the static list ``list_id`` (made now if new):
    the members as they are now (those who entered up to ``at``), to be added by :func:`export_step`;
    None: no such segment."""
    from patron.profiles import lists

    size = conn.execute(
        select(segments.c.size).where(segments.c.account_id == account_id, segments.c.id == segment_id)
    ).scalar()
    if size is None:
        return None
    lists.ensure(conn, account_id, list_id, at)
    return Export(segment_id, list_id, int(size), until=at.isoformat())


class Export(msgspec.Struct):
    """An export under way: the members who entered up to ``until`` (ISO 8601) and whose profile ids
    come after ``start`` are yet to enter the list. (An export queued by an older release, whose
    fields were row ids, has neither: it starts again from the first member, as of its next step.)"""

    segment: int
    list_id: str
    size: int
    start: str = ""
    until: str = ""


def export_step(conn: Connection, account_id: int, job: Export, at: datetime) -> Export | None:
    """Add the next :data:`EXPORT_STEP` members of an export to its list (their documents show the
    list at once); the export's next step, None when it is done. A member who left the segment
    meanwhile is not added, nor one who entered after the export began."""
    from patron.profiles import build, lists

    m = segment_members
    until = datetime.fromisoformat(job.until) if job.until else at
    rows = conn.execute(
        select(m.c.profile, m.c.created_at)
        .where(m.c.account_id == account_id, m.c.segment_id == job.segment, m.c.profile > job.start)
        .order_by(m.c.profile)
        .limit(EXPORT_STEP)
    ).all()
    entered = [
        row.profile
        for row in rows
        if row.created_at <= until and lists.add(conn, account_id, job.list_id, row.profile, at)
    ]
    build.refresh(conn, account_id, entered, at)
    if len(rows) < EXPORT_STEP:
        return None
    return msgspec.structs.replace(job, start=rows[-1].profile, until=until.isoformat())
