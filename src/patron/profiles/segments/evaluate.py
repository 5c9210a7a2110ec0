"""A segment's rule as SQL: one boolean expression over the profiles of an account.

:func:`condition` compiles a rule tree (:mod:`.rules`) into a SQLAlchemy expression over the
``profiles`` table: a profile field is read from its JSON document (``store.json_field``), a list,
orders, custom events and the website's sessions through correlated ``EXISTS`` / count subqueries on
their indexes. Every condition is two-valued (a missing value meets no comparison and is never
NULL), so ``not`` is the exact complement. The same expression serves a full evaluation (a new
segment, a dry-run count: :func:`matching` over a range of profiles) and the worker's incremental one
(restricted to the profiles a round touched with ``store.among``).
"""

from __future__ import annotations

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
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)

from patron.profiles.segments import rules as r
from patron.store import among, json_field
from patron.store.schema import (
    custom_events,
    list_members,
    orders,
    profiles,
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


def _field(conn: Connection, rule: r.FieldCondition) -> ColumnElement[bool]:
    path = rule.field
    if rule.op in ("exists", "missing"):
        kinds = [r.FIELDS[path]] if path in r.FIELDS else ["text", "number", "bool"]
        present = or_(*(json_field(conn, p.c.data, path, kind).is_not(None) for kind in kinds))
        return present if rule.op == "exists" else not_(present)
    values = rule.value if isinstance(rule.value, list) else [rule.value]
    by_kind: dict[str, list[Any]] = {}
    for value in values:
        by_kind.setdefault(_kind(value), []).append(value)
    found = []
    for kind, given in by_kind.items():
        column = json_field(conn, p.c.data, path, kind)
        compared = column.in_(given) if rule.op == "in" else _compare(column, rule.op, given[0])
        found.append(and_(column.is_not(None), compared))
    return or_(*found)


def _consent(conn: Connection, rule: r.ConsentCondition) -> ColumnElement[bool]:
    if rule.consent == "email":
        optin = json_field(conn, p.c.data, "marketing_optin", "bool")
        if rule.is_ == "unknown":
            return optin.is_(None)
        return and_(optin.is_not(None), optin == (rule.is_ == "subscribed"))
    status = json_field(conn, p.c.data, "channels.sms.status", "text")
    if rule.is_ == "unknown":
        return status.is_(None)
    return and_(status.is_not(None), status == rule.is_)


def _date(conn: Connection, rule: r.DateCondition, now: datetime) -> ColumnElement[bool]:
    column = json_field(conn, p.c.data, rule.date, "text")
    found: list[ColumnElement[bool]] = [column.is_not(None)]
    if rule.before is not None:
        found.append(column < r.stamp(r.moment(rule.before, now)))
    if rule.after is not None:
        found.append(column >= r.stamp(r.moment(rule.after, now)))
    return and_(*found)


def _counted(query: Select[Any], rule: Any, total: ColumnElement[Any] | None = None) -> ColumnElement[bool]:
    """``rule.op rule.value`` of how many rows ``query`` finds (or of ``total``'s sum over them);
    "at least one" as an ``EXISTS``, which stops at the first."""
    if total is None and rule.op == "gte" and rule.value == 1:
        return exists(query.with_only_columns(true()))
    if total is None and rule.op == "lt" and rule.value == 1:
        return not_(exists(query.with_only_columns(true())))
    measured = func.count() if total is None else func.coalesce(func.sum(total), 0.0)
    return _compare(query.with_only_columns(measured).scalar_subquery(), rule.op, rule.value)


def _orders(conn: Connection, rule: r.OrdersCondition, now: datetime) -> ColumnElement[bool]:
    o = orders
    query = select(o.c.id).where(
        o.c.account_id == p.c.account_id, o.c.profile == p.c.profile_id, o.c.counted.is_(True)
    )
    if rule.since is not None:
        query = query.where(o.c.placed_at >= r.stamp(r.moment(rule.since, now)))
    if rule.product is not None:  # a line item of the product (documents are compact JSON)
        query = query.where(o.c.data.contains(f'"product_id":{_json(rule.product)}', autoescape=True))
    return _counted(query, rule, o.c.revenue if rule.orders == "revenue" else None)


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
    query = (
        select(e.c.id)
        .select_from(s)
        .join(
            e, (e.c.account_id == s.c.account_id) & (e.c.cid == s.c.cid) & (e.c.session_id == s.c.session_id)
        )
        .where(
            s.c.account_id == p.c.account_id,
            s.c.profile == p.c.profile_id,
            (e.c.kind == "viewproduct") | ((e.c.kind == "pageview") & (e.c.page_type == "product")),
        )
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


def candidates(account_id: int) -> ColumnElement[bool]:
    """The profiles a segment may hold: the account's live ones, not anonymised."""
    return and_(p.c.account_id == account_id, p.c.merged_into.is_(None), p.c.anonymised_at.is_(None))


def matching(
    conn: Connection,
    account_id: int,
    rule: r.Rule,
    now: datetime,
    *,
    among_ids: Collection[str] | None = None,
    ids: tuple[int, int] | None = None,
) -> set[str]:
    """The profile ids that meet the rule: among ``among_ids``, or with internal ids in ``ids``
    (after the first, up to and including the second)."""
    query = select(p.c.profile_id).where(candidates(account_id), condition(conn, rule, now))
    if among_ids is not None:
        query = query.where(among(conn, p.c.profile_id, list(among_ids)))
    if ids is not None:
        query = query.where(p.c.id > ids[0], p.c.id <= ids[1])
    return set(conn.execute(query).scalars())


def count(conn: Connection, account_id: int, rule: r.Rule, now: datetime) -> int:
    """How many profiles meet the rule (a dry run)."""
    query = select(func.count()).select_from(p).where(candidates(account_id), condition(conn, rule, now))
    return int(conn.execute(query).scalar_one())
