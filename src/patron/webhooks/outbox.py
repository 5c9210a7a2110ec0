"""The webhooks' outbox: :func:`emit` writes an event once, in the caller's transaction, when an
endpoint of the account is subscribed to its type; a change and the event that tells of it are thus
committed together or not at all. The events a unit of work emits together (of one account and time:
a round's) are one row of the outbox, their data not yet made into bodies, whatever their number
and the number of endpoints. The deliverer then fans each event out (:func:`fan_out`, in its own
write): one row of ``webhook_events`` for each endpoint subscribed to it then (enabled or not: a
disabled endpoint keeps its events for replay), with its body, and the row leaves the outbox.

A segment's entries and exits are their rows of ``segment_changes`` (written in the same transaction):
the outbox holds where the unit's rows begin and end (:func:`emit_changes`), and the deliverer reads
them when it fans the row out, so a round of many entries encodes and stores no event of its own for
them. An entry or exit deleted before then (its person anonymised, its segment deleted) is not sent.

An event is about the profile it names as it is when fanned out: a profile merged meanwhile gives its
events to the one it was merged into (delivered in order with that one's), and the events of a profile
anonymised meanwhile are dropped, but its ``profile.anonymised``.

Which endpoints an account has is read once per unit of work (a transaction, or a savepoint of the
SQLite writer's group), so a round that emits many events asks once; an account without endpoints
costs one indexed read per unit.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, get_args

import msgspec
from sqlalchemy import ColumnElement, Connection, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from patron.model.rounds import Registry, Round
from patron.store import among, chunks, insert_rows, lock_fan_out
from patron.store.schema import profiles, segment_changes, webhook_endpoints, webhook_events, webhook_outbox
from patron.webhooks.requests import EventType

#: An event to be delivered: the first undelivered one of its profile for its endpoint (or one about
#: no profile); a claim reads only these.
PENDING: Final = "pending"
#: To be delivered after an earlier event of its profile for its endpoint (:func:`promote` makes it
#: pending then); shown as pending.
WAITING: Final = "waiting"
#: Events not yet delivered nor failed.
UNFINISHED: Final = (PENDING, WAITING)
DELIVERED: Final = "delivered"
FAILED: Final = "failed"
#: How long an event is retried: no attempt starts later than this after it is written (or replayed).
RETRY_WINDOW: Final = timedelta(days=3)

#: Every event type an endpoint may subscribe to (docs/webhooks.md describes each one's data).
EVENT_TYPES: Final = get_args(EventType)
_KNOWN: Final = frozenset(EVENT_TYPES)


#: An event in the outbox: its id (the webhook-id header), type, the profile it is about, its data.
_Event = tuple[str, str, str | None, msgspec.Raw]
#: Events of one account and time: (account id, time, the events).
_Events = tuple[int, datetime, list[_Event]]
#: The most events a row of the outbox holds (a round's events beyond are written in more rows).
ROW_EVENTS: Final = 1000
#: The type of an outbox entry that stands for a segment's entries and exits: its data ``[after,
#: upto, count]``, the account's rows of ``segment_changes`` with ids after ``after`` up to ``upto``.
_CHANGES: Final = "segment.changes"
#: The event type of each kind of segment change.
_CHANGE_TYPES: Final = {"segment_enter": "segment.entered", "segment_exit": "segment.exited"}


@dataclass
class _Unit:
    """What one unit of work knows of the webhooks: each account's endpoints by event type, and the
    profiles anonymised in it (which tell nothing more after their ``profile.anonymised``)."""

    endpoints: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    anonymised: set[str] = field(default_factory=set)
    #: While deferring (the worker's round, from its linker's start to its finish): the rows to
    #: write, in order, at :func:`flush`.
    deferred: list[_Events] | None = None
    #: The events' ids: ``msg_``, 80 random bits of the unit's, and a count within it.
    prefix: str = field(default_factory=lambda: f"msg_{secrets.token_hex(10)}")
    emitted: int = 0


_units: weakref.WeakKeyDictionary[Any, _Unit] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _unit(conn: Connection) -> _Unit:
    transaction = conn.get_nested_transaction() or conn.get_transaction()
    if transaction is None:  # pragma: no cover - emit runs inside a unit of work
        return _Unit()
    unit = _units.get(transaction)
    if unit is None:
        with _lock:  # made once per unit of work, by whichever thread asks first
            unit = _units.setdefault(transaction, _Unit())
    return unit


def defer(conn: Connection) -> None:
    """From now on in this unit of work, keep the events emitted and write them together at
    :func:`flush` (the worker's round: one statement for the round's events, not one per record).
    Kept in the unit: a savepoint rolled back drops the events it emitted with it."""
    unit = _unit(conn)
    if unit.deferred is None:
        unit.deferred = []


def flush(conn: Connection, *, end: bool = False) -> None:
    """Write the events kept since :func:`defer`, in the order they were emitted; ``end``: and
    write the next ones at once again."""
    unit = _unit(conn)
    if unit.deferred:
        _write(conn, unit.deferred)
    unit.deferred = None if end or unit.deferred is None else []


def forget(conn: Connection) -> None:
    """The unit of work changed the account's endpoints: read them again at the next emit."""
    _unit(conn).endpoints.clear()


def subscribed(conn: Connection, account_id: int, event_type: str) -> list[int]:
    """The endpoints (their row ids) of the account subscribed to ``event_type``."""
    return _subscribed(conn, _unit(conn), account_id, event_type)


def _subscribed(conn: Connection, unit: _Unit, account_id: int, event_type: str) -> list[int]:
    by_type = unit.endpoints.get(account_id)
    if by_type is None:
        e = webhook_endpoints
        rows = conn.execute(select(e.c.id, e.c.event_types).where(e.c.account_id == account_id))
        by_type = {}
        for row in rows:
            for kind in row.event_types:
                by_type.setdefault(kind, []).append(row.id)
        unit.endpoints[account_id] = by_type
    return by_type.get(event_type, [])


def wants(conn: Connection, account_id: int, event_type: str) -> bool:
    """Whether an endpoint of the account is subscribed to ``event_type`` (so building its data is
    worth it)."""
    return bool(subscribed(conn, account_id, event_type))


def wants_changes(conn: Connection, account_id: int) -> bool:
    """Whether an endpoint of the account takes segments' entries or exits."""
    return any(wants(conn, account_id, kind) for kind in _CHANGE_TYPES.values())


def emit(
    conn: Connection,
    account_id: int,
    event_type: str,
    data: Mapping[str, Any],
    at: datetime,
    *,
    profile: str | None = None,
) -> None:
    """Write an event in ``conn``'s transaction if an endpoint of the account is subscribed to
    ``event_type``. Events about one ``profile`` are delivered to an endpoint in the
    order they were written."""
    emit_each(conn, account_id, event_type, [(data, profile)], at)


def emit_each(
    conn: Connection,
    account_id: int,
    event_type: str,
    events: Iterable[tuple[Mapping[str, Any], str | None]],
    at: datetime,
) -> None:
    """:func:`emit` for each of ``events`` (its data and the profile it is about), all of one type and
    time, in that order."""
    if event_type not in _KNOWN:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    unit = _unit(conn)
    if not _subscribed(conn, unit, account_id, event_type):
        return
    made = []
    for data, profile in events:  # the data encoded now: the caller may change it afterwards
        unit.emitted += 1
        made.append((f"{unit.prefix}{unit.emitted:08x}", event_type, profile, msgspec.Raw(_encode(data))))
    _add(conn, unit, (account_id, at, made))


def _add(conn: Connection, unit: _Unit, events: _Events) -> None:
    """Write the unit's events now, or keep them for :func:`flush` while it defers."""
    if unit.deferred is None:
        _write(conn, [events])
    else:
        unit.deferred.append(events)


def emit_changes(conn: Connection, account_id: int, after: int, upto: int, count: int, at: datetime) -> None:
    """The ``count`` entries and exits of the account's segments just written (its rows of
    ``segment_changes`` after the id ``after`` up to ``upto``) as events, for an account whose
    endpoints take them (:func:`wants_changes`): an entry of the outbox for each :data:`ROW_EVENTS`
    ids of them, read when the deliverer fans it out (each standing for as many events as its ids, at
    most ``count``: on PostgreSQL other accounts' rows may lie among them)."""
    made: list[_Event] = []
    for start in range(after, upto, ROW_EVENTS):
        end = min(start + ROW_EVENTS, upto)
        made.append(("", _CHANGES, None, msgspec.Raw(_encode([start, end, min(end - start, count)]))))
    if made:
        _add(conn, _unit(conn), (account_id, at, made))


def _weight(event: _Event) -> int:
    """How many events an outbox entry stands for."""
    return int(msgspec.json.decode(event[3])[2]) if event[1] == _CHANGES else 1


def _changes(conn: Connection, account_id: int, made: list[_Event]) -> list[_Event]:
    """The entries of a row of the outbox, a segment's changes read for each entry that stands for
    them (those deleted since are not there to read)."""
    c = segment_changes.c
    found: list[_Event] = []
    for event in made:
        if event[1] != _CHANGES:
            found.append(event)
            continue
        after, upto, _ = msgspec.json.decode(event[3])
        query = select(c.id, c.segment_id, c.profile, c.event).where(
            c.id > after, c.id <= upto, c.account_id == account_id
        )
        for row in conn.execute(query.order_by(c.id)):
            data = {"segment_id": str(row.segment_id), "profile_id": row.profile}
            raw = msgspec.Raw(_encode(data))
            found.append((f"msg_change{row.id:020x}", _CHANGE_TYPES[row.event], row.profile, raw))
    return found


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(list[_Event]).decode


def _write(conn: Connection, groups: list[_Events]) -> None:
    """Write the events in order: a row for each run of one account and time (of at most
    :data:`ROW_EVENTS`, an entry standing for a segment's changes counting as many), one statement
    for them all."""
    for (account_id, at), runs in itertools.groupby(groups, key=lambda group: group[:2]):
        rows: list[tuple[int, str]] = []
        part: list[_Event] = []
        weight = 0
        for event in (event for _, _, run in runs for event in run):
            stands_for = _weight(event)
            if part and weight + stands_for > ROW_EVENTS:
                rows.append((weight, _encode(part).decode()))
                part, weight = [], 0
            part.append(event)
            weight += stands_for
        if part:
            rows.append((weight, _encode(part).decode()))
        fixed = {"account_id": account_id, "created_at": at}
        insert_rows(conn, webhook_outbox, fixed, ("events", "payload"), rows)


def fan_out(conn: Connection, most: int) -> int:
    """Take the oldest rows of the outbox, up to ``most`` events (one row at least), each event written
    for every endpoint of its account subscribed to its type, in the outbox's order; returns how many
    events were taken. Two deliverers fan out in turn (the second waits for the first's rows), so the
    events keep their order; the endpoints read are held from being deleted until the events written
    for them are committed. On PostgreSQL the accounts' fan-out locks are held (shared), taken before
    any row: no profile the events name is being merged or anonymised meanwhile (:func:`hold`)."""
    o, p = webhook_outbox, webhook_endpoints
    heads = conn.execute(select(o.c.id, o.c.account_id, o.c.events).order_by(o.c.id).limit(most)).all()
    ids: list[int] = []
    total = 0
    for head in heads:
        if ids and total + head.events > most:
            break
        ids.append(head.id)
        total += head.events
    if not ids:
        return 0
    for account_id in sorted({head.account_id for head in heads[: len(ids)]}):
        lock_fan_out(conn, account_id, shared=True)
    taken = conn.execute(select(o).where(among(conn, o.c.id, ids)).order_by(o.c.id).with_for_update()).all()
    if not taken:  # (another deliverer's since the look above)
        return 0
    accounts = sorted({row.account_id for row in taken})
    theirs = select(p.c.id, p.c.account_id, p.c.event_types).where(among(conn, p.c.account_id, accounts))
    by_account: dict[int, list[Any]] = {}
    for endpoint in conn.execute(theirs.order_by(p.c.id).with_for_update(read=True, key_share=True)):
        by_account.setdefault(endpoint.account_id, []).append(endpoint)
    events = [(row, _changes(conn, row.account_id, _decode(row.payload))) for row in taken]
    now = _profiles_now(conn, {(row.account_id, e[2]) for row, made in events for e in made if e[2]})
    fanned = []
    for row, made in events:
        timestamp = row.created_at.isoformat()
        for event_id, kind, profile, data in made:
            if profile is not None and kind != "profile.anonymised":
                profile = now.get((row.account_id, profile), profile)
                if profile is None:
                    continue  # anonymised since: never sent
            # the body, as Standard Webhooks has it: {"type", "timestamp", "data"}
            body = f'{{"type":"{kind}","timestamp":"{timestamp}","data":{bytes(data).decode()}}}'
            for endpoint in by_account.get(row.account_id, ()):
                if kind in endpoint.event_types:
                    fanned.append((row, endpoint.id, event_id, kind, profile, body))
    # an event is pending when it is the first undelivered one of its profile for its endpoint
    ahead = _unfinished(conn, {(endpoint, profile) for _, endpoint, _, _, profile, _ in fanned if profile})
    rows = []
    for row, endpoint, event_id, kind, profile, body in fanned:
        first = profile is None or (endpoint, profile) not in ahead
        if profile is not None:
            ahead.add((endpoint, profile))
        rows.append(
            {
                "account_id": row.account_id,
                "endpoint": endpoint,
                "event_id": event_id,
                "type": kind,
                "profile": profile,
                "payload": body,
                "status": PENDING if first else WAITING,
                "attempts": 0,
                "next_attempt_at": row.created_at,
                "retry_until": row.created_at + RETRY_WINDOW,
                "created_at": row.created_at,
            }
        )
    if rows:
        conn.execute(insert(webhook_events), rows)
    conn.execute(delete(o).where(among(conn, o.c.id, [row.id for row in taken])))
    return sum(row.events for row in taken)


def _profiles_now(conn: Connection, named: set[tuple[int, str]]) -> dict[tuple[int, str], str | None]:
    """Of the (account, profile) pairs events name, those changed since: merged (the profile it was
    merged into) or anonymised, or merged into one anonymised (None)."""
    by_account: dict[int, set[str]] = {}
    for account_id, profile in named:
        by_account.setdefault(account_id, set()).add(profile)
    changed: dict[tuple[int, str], str | None] = {}
    for account_id, ids in sorted(by_account.items()):
        rows = _profile_rows(conn, account_id, ids)
        into_others = {row.merged_into for row in rows.values() if row.merged_into} - rows.keys()
        rows |= _profile_rows(conn, account_id, into_others)
        for profile, row in rows.items():
            into = rows.get(row.merged_into) if row.merged_into else None
            if row.anonymised_at is not None or (into is not None and into.anonymised_at is not None):
                changed[account_id, profile] = None
            elif row.merged_into:
                changed[account_id, profile] = row.merged_into
    return changed


def _profile_rows(conn: Connection, account_id: int, ids: set[str]) -> dict[str, Any]:
    """The account's profiles of ``ids`` by id: whether and into what each was merged, and when it was
    anonymised."""
    pr = profiles
    found: dict[str, Any] = {}
    for chunk in chunks(sorted(ids)):
        query = select(pr.c.profile_id, pr.c.merged_into, pr.c.anonymised_at).where(
            pr.c.account_id == account_id, among(conn, pr.c.profile_id, chunk)
        )
        found.update((row.profile_id, row) for row in conn.execute(query))
    return found


def drop(conn: Connection, where: ColumnElement[bool], about: Collection[str]) -> None:
    """Take the events about the profiles ``about`` (but their ``profile.anonymised``) out of the
    outbox's rows ``where`` says."""
    o = webhook_outbox
    if not about:
        return
    naming = or_(*(o.c.payload.contains(f'"{profile}"', autoescape=True) for profile in about))
    for row in conn.execute(select(o.c.id, o.c.payload).where(where, naming)).all():
        made = _decode(row.payload)
        kept = [event for event in made if event[2] not in about or event[1] == "profile.anonymised"]
        if not kept:
            conn.execute(delete(o).where(o.c.id == row.id))
        elif len(kept) < len(made):
            payload = _encode(kept).decode()
            events = sum(map(_weight, kept))
            conn.execute(update(o).where(o.c.id == row.id).values(events=events, payload=payload))


def _unfinished(conn: Connection, pairs: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """Those of the (endpoint, profile) pairs that have an event not yet delivered nor failed."""
    e = webhook_events
    found: set[tuple[int, str]] = set()
    by_endpoint: dict[int, list[str]] = {}
    for endpoint, profile in pairs:
        by_endpoint.setdefault(endpoint, []).append(profile)
    for endpoint, named in sorted(by_endpoint.items()):
        for chunk in chunks(sorted(named)):
            query = select(e.c.profile).where(
                e.c.endpoint == endpoint, among(conn, e.c.profile, chunk), e.c.status.in_(UNFINISHED)
            )
            found.update((endpoint, profile) for profile in conn.execute(query.distinct()).scalars())
    return found


def promote(conn: Connection, *where: Callable[[Any], ColumnElement[bool]]) -> None:
    """Make the first waiting event of each endpoint and profile pending where none of theirs is:
    after the pending one was delivered or failed, or a merge or a replay. ``where`` narrows the
    events looked at (each given the table's alias)."""
    e = webhook_events
    w, h = aliased(e), aliased(e)
    ahead = exists().where(h.c.endpoint == w.c.endpoint, h.c.profile == w.c.profile, h.c.status == PENDING)
    firsts = (
        select(func.min(w.c.id))
        .where(w.c.status == WAITING, ~ahead, *(condition(w) for condition in where))
        .group_by(w.c.endpoint, w.c.profile)
    )
    conn.execute(update(e).where(e.c.id.in_(firsts)).values(status=PENDING))


def shown(status: str) -> str:
    """An event's status as the API and the console show it (a waiting one is pending)."""
    return PENDING if status == WAITING else status


def anonymised(conn: Connection, account_id: int, profiles: Iterable[str], at: datetime) -> None:
    """Their ``profile.anonymised`` events, carrying the profile ids alone: the last ones about them
    (this unit of work emits no ``profile.updated`` of theirs after it)."""
    unit = _unit(conn)
    for profile in profiles:
        unit.anonymised.add(profile)
        emit(conn, account_id, "profile.anonymised", {"profile_id": profile}, at, profile=profile)


def _profiles_changed(round: Round) -> None:
    """``profile.updated`` for the profiles a round changed (not those it made: their
    ``profile.created`` was emitted as the linker made them, before their records' events)."""
    if not wants(round.conn, round.account_id, "profile.updated"):
        return
    told = sorted(round.updated - _unit(round.conn).anonymised)
    events = [({"profile_id": profile}, profile) for profile in told]
    emit_each(round.conn, round.account_id, "profile.updated", events, round.at)


def pending(conn: Connection) -> int:
    """Events of every account not yet delivered nor failed: in the outbox, or fanned out and pending
    (counted on ``ix_webhook_events_due``)."""
    t = webhook_events
    waiting = conn.execute(select(func.coalesce(func.sum(webhook_outbox.c.events), 0))).scalar_one()
    return int(waiting) + int(
        conn.execute(select(func.count()).where(t.c.status.in_(UNFINISHED))).scalar_one()
    )


def register(kinds: Registry) -> None:
    """Emit the profiles' updates at the end of every account's part of every round."""
    kinds.after(_profiles_changed)


def hold(conn: Connection, account_id: int) -> None:
    """Before the account's profiles are merged or anonymised: wait for the deliverers fanning out its
    events (they then read the profiles as this transaction leaves them), and keep them from it until
    this transaction ends."""
    lock_fan_out(conn, account_id, shared=False)


def moved(conn: Connection, account_id: int, merged: str, survivor: str) -> None:
    """A merge: the merged profile's undelivered events are the survivor's, delivered in order (of
    their ids) with its own: the first of them for each endpoint is pending, the others wait (one
    under way meanwhile is sent again in its turn). (Those still in the outbox are the survivor's
    when fanned out.)"""
    e = webhook_events
    theirs = (e.c.account_id == account_id) & e.c.status.in_(UNFINISHED)
    conn.execute(
        update(e).where(theirs, e.c.profile.in_((merged, survivor))).values(profile=survivor, status=WAITING)
    )
    promote(conn, lambda t: t.c.account_id == account_id, lambda t: t.c.profile == survivor)
