"""A segment's rule as SQL: one boolean expression over the profiles of an account.

:func:`condition` compiles a rule tree (:mod:`.rules`) into a SQLAlchemy expression over the
``profiles`` table: a profile field is read from its JSON document (``store.json_field``), a list,
orders, custom events and the website's sessions through correlated ``EXISTS`` / count subqueries on
their indexes. Every condition is two-valued (a missing value meets no comparison and is never
NULL), so ``not`` is the exact complement. The same expression serves a full evaluation (a new
segment's build, :func:`differences` over a range of profiles; a dry-run count, :func:`count`) and the
worker's incremental one (:func:`matching_each`: the profiles a round touched, every segment at once).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Collection
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
    tuple_,
)

from patron.profiles.build import TYPED
from patron.profiles.segments import rules as r
from patron.store import among, json_elements, json_field
from patron.store.schema import (
    custom_events,
    list_members,
    orders,
    products,
    profiles,
    segment_members,
    tracking_events,
    tracking_sessions,
)

p = profiles
_ABANDONED = {"basket": "abandoned_basket", "browse": "browse_abandoned"}


_OPS = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _compare(column: ColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    compared: ColumnElement[bool] = _OPS[op](column, value)
    return compared


def _kind(value: Any) -> str:
    return "bool" if isinstance(value, bool) else "number" if isinstance(value, int | float) else "text"


def _read(conn: Connection, path: str, kind: str) -> ColumnElement[Any]:
    """A profile field of the kind given: its typed column where it has one, else from the JSON."""
    column = TYPED.get(path)
    return p.c[column] if column is not None else json_field(conn, p.c.data, path, kind)


def _field(conn: Connection, rule: r.FieldCondition) -> ColumnElement[bool]:
    path = rule.field
    if rule.op in ("exists", "missing"):
        kinds = [r.FIELDS[path]] if path in r.FIELDS else ["text", "number", "bool"]
        present = or_(*(_read(conn, path, kind).is_not(None) for kind in kinds))
        return present if rule.op == "exists" else not_(present)
    values = rule.value if isinstance(rule.value, list) else [rule.value]
    by_kind: dict[str, list[Any]] = {}
    for value in values:
        by_kind.setdefault(_kind(value), []).append(value)
    found = []
    for kind, given in by_kind.items():
        column = _read(conn, path, kind)
        compared = column.in_(given) if rule.op == "in" else _compare(column, rule.op, given[0])
        found.append(and_(column.is_not(None), compared))
    return or_(*found)


def _consent(conn: Connection, rule: r.ConsentCondition) -> ColumnElement[bool]:
    if rule.consent == "email":
        optin = p.c.marketing_optin
        if rule.is_ == "unknown":
            return optin.is_(None)
        return and_(optin.is_not(None), optin == (rule.is_ == "subscribed"))
    status = p.c.sms_status
    if rule.is_ == "unknown":
        return status.is_(None)
    return and_(status.is_not(None), status == rule.is_)


def _date(conn: Connection, rule: r.DateCondition, now: datetime) -> ColumnElement[bool]:
    column = p.c[TYPED[rule.date]]
    found: list[ColumnElement[bool]] = [column.is_not(None)]
    if rule.before is not None:
        found.append(column < r.stamp(r.moment(rule.before, now)))
    if rule.after is not None:
        found.append(column >= r.stamp(r.moment(rule.after, now)))
    return and_(*found)


def _counted(query: Select[Any], rule: Any, total: ColumnElement[Any] | None = None) -> ColumnElement[bool]:
    """``rule.op rule.value`` of how many rows ``query`` finds (or of ``total``'s sum over them). A
    count is compared through :func:`_at_least`, which reads no further than the value: "at least 3
    orders" stops at the third, however many the profile has."""
    if total is not None:
        summed = query.with_only_columns(func.coalesce(func.sum(total), 0.0)).scalar_subquery()
        return _compare(summed, rule.op, rule.value)
    value, op = rule.value, rule.op
    if op in ("eq", "ne"):
        exactly = (
            and_(_at_least(query, int(value)), not_(_at_least(query, int(value) + 1)))
            if value == int(value)
            else false()
        )
        return exactly if op == "eq" else not_(exactly)
    # count > v is count >= floor(v) + 1, count >= v is count >= ceil(v); lt and lte their complements
    least = math.floor(value) + 1 if op in ("gt", "lte") else math.ceil(value)
    reached = _at_least(query, least)
    return reached if op in ("gt", "gte") else not_(reached)


def _at_least(query: Select[Any], least: int) -> ColumnElement[bool]:
    """Whether ``query`` finds ``least`` rows or more: whether its row number ``least`` exists (for
    one row, a bare ``EXISTS``, which PostgreSQL may also run as a join over many profiles)."""
    if least <= 0:
        return true()
    found = query.with_only_columns(true())
    return exists(found if least == 1 else found.limit(1).offset(least - 1))


def _orders(conn: Connection, rule: r.OrdersCondition, now: datetime) -> ColumnElement[bool]:
    o = orders
    query = select(o.c.id).where(
        o.c.account_id == p.c.account_id, o.c.profile == p.c.profile_id, o.c.counted.is_(True)
    )
    if rule.since is not None:
        # read the profile's orders through their index: a bare placed_at would let SQLite range over
        # all the account's orders by date, for each profile
        placed = func.coalesce(o.c.placed_at, "")
        query = query.where(placed >= r.stamp(r.moment(rule.since, now)))
    if rule.product is not None:  # a line item of the product (documents are compact JSON)
        query = query.where(o.c.data.contains(f'"product_id":{_json(rule.product)}', autoescape=True))
    if rule.attribute is not None:
        query = query.where(_bought_with(conn, rule.attribute))
    return _counted(query, rule, o.c.revenue if rule.orders == "revenue" else None)


def _bought_with(conn: Connection, attribute: r.ProductAttribute) -> ColumnElement[bool]:
    """The order has a line item of a product (as stored now) with the attribute."""
    o, pr = orders, products
    item, held = json_elements(conn, o.c.data, "lineitems"), json_elements(conn, pr.c.data, "attributes")
    with_attribute = exists(
        select(true())
        .select_from(held)
        .where(
            json_field(conn, held.c.value, "type", "text") == attribute.type,
            json_field(conn, held.c.value, "id", "text") == attribute.id,
        )
        .correlate(pr)
    )
    # the products the order's lines name, found by key (as a join, SQLite may read every product of
    # the account for each line instead)
    named = select(json_field(conn, item.c.value, "product_id", "text")).select_from(item)
    return exists(
        select(true())
        .select_from(pr)
        .where(pr.c.account_id == o.c.account_id, pr.c.product_id.in_(named), with_attribute)
        .correlate(o)
    )


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _events(conn: Connection, rule: r.EventsCondition, now: datetime) -> ColumnElement[bool]:
    e = custom_events
    query = select(e.c.id).where(
        e.c.account_id == p.c.account_id, e.c.profile == p.c.profile_id, e.c.event_type == rule.event
    )
    if rule.since is not None:
        since = r.moment(rule.since, now)
        happened = json_field(conn, e.c.data, "timestamp", "text")
        query = query.where(
            or_(
                and_(happened.is_not(None), happened >= r.stamp(since)),
                and_(happened.is_(None), e.c.created_at >= since),
            )
        )
    if rule.property is not None:
        value = rule.property.value
        column = json_field(conn, e.c.data, f"properties.{rule.property.name}", _kind(value))
        query = query.where(column.is_not(None), column == value)
    return _counted(query, rule)


def _viewed(conn: Connection, rule: r.ViewedCondition, now: datetime) -> ColumnElement[bool]:
    e, s = tracking_events, tracking_sessions
    # the profile's sessions (their index), then each one's events (theirs)
    sessions = (
        select(s.c.cid, s.c.session_id)
        .where(s.c.account_id == p.c.account_id, s.c.profile == p.c.profile_id)
        .correlate(p)
    )
    query = select(e.c.id).where(
        e.c.account_id == p.c.account_id,
        tuple_(e.c.cid, e.c.session_id).in_(sessions),
        (e.c.kind == "viewproduct") | ((e.c.kind == "pageview") & (e.c.page_type == "product")),
    )
    pid = json_field(conn, e.c.data, "pid", "text")
    query = query.where(pid.is_not(None))
    if rule.viewed != "*":
        query = query.where(pid == rule.viewed)
    if rule.since is not None:
        query = query.where(e.c.occurred_at >= r.moment(rule.since, now))
    return _counted(query, rule)


def _abandoned(conn: Connection, rule: r.AbandonedCondition, now: datetime) -> ColumnElement[bool]:
    s = tracking_sessions
    query = select(s.c.id).where(
        s.c.account_id == p.c.account_id,
        s.c.profile == p.c.profile_id,
        s.c.outcome == _ABANDONED[rule.abandoned],
    )
    if rule.since is not None:
        query = query.where(s.c.ended_at >= r.moment(rule.since, now))
    return _counted(query, rule)


def condition(conn: Connection, rule: r.Rule, now: datetime) -> ColumnElement[bool]:
    """The rule as a boolean expression over ``profiles`` (as of ``now``, for relative moments)."""
    if isinstance(rule, r.All):
        return and_(true(), *(condition(conn, child, now) for child in rule.all))
    if isinstance(rule, r.AnyOf):
        return or_(false(), *(condition(conn, child, now) for child in rule.any))
    if isinstance(rule, r.Not):
        return not_(condition(conn, rule.not_, now))  # type: ignore[arg-type]
    if isinstance(rule, r.FieldCondition):
        return _field(conn, rule)
    if isinstance(rule, r.ConsentCondition):
        return _consent(conn, rule)
    if isinstance(rule, r.ListCondition):
        m = list_members
        return exists(
            select(true()).where(
                m.c.account_id == p.c.account_id, m.c.list_id == rule.list, m.c.profile == p.c.profile_id
            )
        )
    if isinstance(rule, r.DateCondition):
        return _date(conn, rule, now)
    if isinstance(rule, r.OrdersCondition):
        return _orders(conn, rule, now)
    if isinstance(rule, r.EventsCondition):
        return _events(conn, rule, now)
    if isinstance(rule, r.ViewedCondition):
        return _viewed(conn, rule, now)
    return _abandoned(conn, rule, now)


def _moved(value: str | None, since: datetime, now: datetime) -> tuple[datetime, datetime] | None:
    """The span a relative moment moved through from ``since`` to ``now`` (None: not relative)."""
    ago = r.relative(value) if value is not None else None
    return None if ago is None else (since - ago, now - ago)


def _crossing(account_id: int, node: r.Rule, since: datetime, now: datetime) -> list[Select[Any]] | None:
    """Queries of the profile ids whose truth of ``node`` may differ between ``since`` and ``now``
    (a date, an order's time or a session's end inside a span a relative moment moved through), each
    a range of one index; None when an index cannot say (custom events, product views)."""
    found: list[Select[Any]] = []
    if isinstance(node, r.DateCondition):
        column = p.c[TYPED[node.date]]
        for lo, hi in filter(None, (_moved(node.before, since, now), _moved(node.after, since, now))):
            found.append(
                select(p.c.profile_id).where(
                    p.c.account_id == account_id, column >= r.stamp(lo), column < r.stamp(hi)
                )
            )
    elif isinstance(node, r.OrdersCondition) and (span := _moved(node.since, since, now)):
        o = orders
        found.append(
            select(o.c.profile).where(
                o.c.account_id == account_id,
                o.c.placed_at >= r.stamp(span[0]),
                o.c.placed_at < r.stamp(span[1]),
                o.c.profile.is_not(None),
            )
        )
    elif isinstance(node, r.AbandonedCondition) and (span := _moved(node.since, since, now)):
        s = tracking_sessions
        found.append(
            select(s.c.profile).where(
                s.c.ended_at >= span[0],
                s.c.ended_at < span[1],
                s.c.account_id == account_id,
                s.c.profile.is_not(None),
            )
        )
    elif isinstance(node, r.EventsCondition | r.ViewedCondition) and _moved(node.since, since, now):
        return None
    return found


def crossed(
    conn: Connection, account_id: int, rule: r.Rule, since: datetime, now: datetime, limit: int
) -> set[str] | None:
    """The profiles whose membership may have changed between ``since`` and ``now`` by time alone:
    those a relative condition's moment passed over (more than ``limit`` of them: any ``limit`` + 1);
    None when a relative condition has no index to say who crossed its line."""
    found: set[str] = set()
    for node in r.walk(rule):
        queries = _crossing(account_id, node, since, now)
        if queries is None:
            return None
        for query in queries:
            found.update(conn.execute(query.limit(limit + 1)).scalars())
            if len(found) > limit:
                return found
    return found


def candidates(account_id: int) -> ColumnElement[bool]:
    """The profiles a segment may hold: the account's live ones, not anonymised."""
    return and_(p.c.account_id == account_id, p.c.merged_into.is_(None), p.c.anonymised_at.is_(None))


def differences(
    conn: Connection,
    account_id: int,
    segment_id: int,
    rule: r.Rule,
    now: datetime,
    ids: tuple[int, int],
    *,
    empty: bool = False,
) -> tuple[set[str], set[str]]:
    """The profiles with internal ids in ``ids`` (after the first, up to and including the second)
    that meet the rule and are not members of the segment, and those that are members and do not
    meet it: (entered, left). One pass over the range, each profile's membership found through the
    members' unique key (not looked for when the segment is ``empty``)."""
    m = segment_members
    meets = and_(candidates(account_id), condition(conn, rule, now))
    held = (
        false()
        if empty
        else exists(
            select(true()).where(
                m.c.account_id == p.c.account_id, m.c.segment_id == segment_id, m.c.profile == p.c.profile_id
            )
        )
    )
    each = (
        select(
            p.c.profile_id,
            case((meets, 1), else_=0).label("meets"),
            case((held, 1), else_=0).label("held"),
        )
        .where(p.c.account_id == account_id, p.c.id > ids[0], p.c.id <= ids[1])
        .subquery()
    )
    query = select(each.c.profile_id, each.c.meets).where(each.c.meets != each.c.held)
    entered: set[str] = set()
    left: set[str] = set()
    for profile_id, truth in conn.execute(query):
        (entered if truth else left).add(profile_id)
    return entered, left


def matching_each(
    conn: Connection, account_id: int, rules: list[r.Rule], now: datetime, among_ids: Collection[str]
) -> list[set[str]]:
    """For each rule, the profile ids among ``among_ids`` that meet it: one query for them all (a
    column of each rule's truth per profile)."""
    truths = [case((condition(conn, rule, now), 1), else_=0) for rule in rules]
    query = select(p.c.profile_id, *truths).where(
        candidates(account_id), among(conn, p.c.profile_id, list(among_ids))
    )
    found: list[set[str]] = [set() for _ in rules]
    for row in conn.execute(query):
        for meets, truth in zip(found, row[1:], strict=True):
            if truth:
                meets.add(row[0])
    return found


def count(conn: Connection, account_id: int, rule: r.Rule, now: datetime) -> int:
    """How many profiles meet the rule (a dry run)."""
    query = select(func.count()).select_from(p).where(candidates(account_id), condition(conn, rule, now))
    return int(conn.execute(query).scalar_one())
