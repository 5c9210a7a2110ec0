"""The report's framework: a :class:`Rule` (id, severity, what it means, how to fix it, and its
check), the registry :data:`RULES`, the :class:`Finding` of a rule over an account, and the verdict."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import msgspec
from sqlalchemy import ColumnElement, Connection, Table, func, select, tuple_

from patron.errors import NotFound
from patron.model.defects import TOLERANCE as TOLERANCE
from patron.store import among
from patron.store.schema import orders

Severity = Literal["error", "warning", "info"]
#: Errors first, then warnings, then information.
RANK: Final[dict[str, int]] = {"error": 0, "warning": 1, "info": 2}
#: Samples a rule shows in the whole report; one rule read alone (``?rule=``) pages through up to
#: :data:`MAX_SAMPLES` at a time.
SAMPLES: Final = 10
MAX_SAMPLES: Final = 250
#: Seconds a report read through the API may take (beyond the store's budget for other reads).
BUDGET: Final = 60.0
#: Rows one step of a scan reads.
CHUNK: Final = 1000
Verdict = Literal["ready", "not ready"]
READY: Final[Verdict] = "ready"
NOT_READY: Final[Verdict] = "not ready"


class Sample(msgspec.Struct):
    """One offending record (or month, kind...): its id and the value at fault."""

    id: str
    value: Any = None


class Finding(msgspec.Struct):
    """A rule over one account: how many records break it and some of them."""

    rule: str
    severity: Severity
    explanation: str
    fix: str
    count: int
    samples: list[Sample]
    #: What the rule measured besides (a share, the orders per month...), when it says more.
    summary: str | None = None


class Report(msgspec.Struct):
    """The verdict and every rule's finding, errors first."""

    verdict: Verdict
    errors: int
    warnings: int
    generated_at: str
    #: The tolerance of the total rules (one cent).
    tolerance: float
    findings: list[Finding]


@dataclass
class Context:
    """What a check is given: the account, the moment of the report, and which samples to keep."""

    conn: Connection
    account_id: int
    now: datetime
    limit: int = SAMPLES
    offset: int = 0


@dataclass
class Tally:
    """A check's result as it goes: the count, and the samples in ``[offset, offset + limit)``."""

    limit: int
    offset: int
    count: int = 0
    samples: list[Sample] = field(default_factory=list)
    summary: str | None = None

    def add(self, record_id: str, value: Any = None) -> None:
        if self.offset <= self.count < self.offset + self.limit:
            self.samples.append(Sample(record_id, value))
        self.count += 1


Check = Callable[[Context, Tally], None]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    explanation: str
    fix: str
    check: Check

    def run(self, ctx: Context) -> Finding:
        tally = Tally(ctx.limit, ctx.offset)
        self.check(ctx, tally)
        return Finding(
            self.id, self.severity, self.explanation, self.fix, tally.count, tally.samples, tally.summary
        )


#: Every rule, by id, in the order the report shows those of one severity.
RULES: dict[str, Rule] = {}


def rule(rule_id: str, severity: Severity, explanation: str, fix: str) -> Callable[[Check], Check]:
    """Register the decorated check as the rule ``rule_id``."""

    def register(check: Check) -> Check:
        if rule_id in RULES:
            raise ValueError(f"rule {rule_id!r} is registered twice")
        RULES[rule_id] = Rule(rule_id, severity, explanation, fix, check)
        return check

    return register


class UnknownRule(NotFound):
    """``?rule=`` names no rule."""


def report(conn: Connection, account_id: int, now: datetime) -> Report:
    """Every rule over the account, with :data:`SAMPLES` samples each, and the verdict."""
    ctx = Context(conn, account_id, now)
    found = [r.run(ctx) for r in RULES.values()]
    found.sort(key=lambda f: (RANK[f.severity], f.count == 0))  # stable: then registry order
    errors = sum(1 for f in found if f.severity == "error" and f.count)
    warnings = sum(1 for f in found if f.severity == "warning" and f.count)
    return Report(
        READY if errors == 0 else NOT_READY,
        errors,
        warnings,
        now.isoformat(),
        TOLERANCE,
        found,
    )


def one(conn: Connection, account_id: int, now: datetime, rule_id: str, limit: int, offset: int) -> Finding:
    """One rule, with the samples ``[offset, offset + limit)`` (at most :data:`MAX_SAMPLES`)."""
    chosen = RULES.get(rule_id)
    if chosen is None:
        raise UnknownRule.at("rule", f"no rule {rule_id!r}; the rules are {', '.join(RULES)}")
    return chosen.run(Context(conn, account_id, now, min(max(limit, 1), MAX_SAMPLES), max(offset, 0)))


# reading the stored data in bounded steps ------------------------------------------------------


def scan(
    ctx: Context, table: Table, *columns: ColumnElement[Any], where: ColumnElement[bool] | None = None
) -> Iterator[Any]:
    """The account's rows of ``table`` (``columns``, and ``id``), in steps of :data:`CHUNK` rows
    along the primary key: memory stays bounded whatever the account holds."""
    last = 0
    while True:
        query = select(table.c.id, *columns).where(table.c.account_id == ctx.account_id, table.c.id > last)
        if where is not None:
            query = query.where(where)
        rows = ctx.conn.execute(query.order_by(table.c.id).limit(CHUNK)).all()
        yield from rows
        if len(rows) < CHUNK:
            return
        last = rows[-1].id


def matching(
    ctx: Context,
    tally: Tally,
    table: Table,
    where: ColumnElement[bool],
    key: ColumnElement[Any],
    value: ColumnElement[Any] | None = None,
) -> None:
    """The account's rows of ``table`` that match ``where`` are the tally's records (in creation
    order), each sampled as ``key`` with ``value``: counted and paged by the database."""
    given = (table.c.account_id == ctx.account_id, where)
    tally.count = ctx.conn.execute(select(func.count()).select_from(table).where(*given)).scalar_one()
    columns = [key] if value is None else [key, value]
    page = select(*columns).where(*given).order_by(table.c.id).limit(tally.limit).offset(tally.offset)
    for row in ctx.conn.execute(page):
        tally.samples.append(Sample(str(row[0]), None if value is None else row[1]))


def flagged(
    ctx: Context, tally: Tally, flags: Table, entity: Table, rule_id: str, key: Callable[[Any], str]
) -> None:
    """The records of ``entity`` flagged for ``rule_id`` when they were written
    (:mod:`patron.model.defects`), each sampled as ``key(row)`` with the value at fault, or the
    records it names that were never pushed."""
    f = flags.c
    mine = (f.account_id == ctx.account_id, f.rule == rule_id)
    tally.count = ctx.conn.execute(select(func.count(f.row_id.distinct())).where(*mine)).scalar_one()
    page = select(f.row_id).where(*mine).group_by(f.row_id).order_by(f.row_id)
    ids = list(ctx.conn.execute(page.limit(tally.limit).offset(tally.offset)).scalars())
    if not ids:
        return
    rows = ctx.conn.execute(
        select(f.row_id, f.ref, f.value, entity)
        .join(entity, entity.c.id == f.row_id)
        .where(*mine, among(ctx.conn, f.row_id, ids))
        .order_by(f.row_id, f.id)
    ).all()
    for row_id in ids:
        found = [row for row in rows if row.row_id == row_id]
        if not found:
            continue
        refs = sorted(row.ref for row in found if row.ref is not None)
        value = refs if refs else (None if found[0].value is None else json.loads(found[0].value))
        tally.samples.append(Sample(key(found[0]), value))


@dataclass(frozen=True)
class Kept:
    """The defects kept for one record type when its records are written
    (:mod:`patron.model.defects`), each read as a rule: ``key(row)`` is a record's id in the report."""

    flags: Table
    entity: Table
    key: Callable[[Any], str]

    def rule(self, rule_id: str, severity: Severity, explanation: str, fix: str) -> None:
        def check(ctx: Context, tally: Tally) -> None:
            flagged(ctx, tally, self.flags, self.entity, rule_id, self.key)

        rule(rule_id, severity, explanation, fix)(check)


def several(
    ctx: Context, tally: Tally, table: Table, key: ColumnElement[Any], other: ColumnElement[Any]
) -> None:
    """Each value of ``key`` that goes with more than one distinct value of ``other`` in the account's
    rows of ``table`` is a record of the tally, sampled with those values."""
    given = (table.c.account_id == ctx.account_id, key.is_not(None), other.is_not(None))
    shared = select(key).where(*given).group_by(key).having(func.count(other.distinct()) > 1)
    tally.count = ctx.conn.execute(select(func.count()).select_from(shared.subquery())).scalar_one()
    page = ctx.conn.execute(shared.order_by(key).limit(tally.limit).offset(tally.offset)).scalars()
    for value in page:
        others = select(other).distinct().where(*given, key == value)
        tally.samples.append(Sample(value, sorted(ctx.conn.execute(others).scalars())))


def recent_orders(ctx: Context, since: datetime) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The account's orders placed from ``since`` to the report's moment (id and document), in steps
    of :data:`CHUNK` along their date: read through its index, never the older orders."""
    c = orders.c
    given = (
        c.account_id == ctx.account_id,
        c.placed_at >= since.isoformat(),
        c.placed_at <= ctx.now.isoformat(),
    )
    last: tuple[str, int] | None = None
    while True:
        query = select(c.id, c.placed_at, c.order_id, c.data).where(*given)
        if last is not None:
            query = query.where(tuple_(c.placed_at, c.id) > tuple_(*last))
        rows = ctx.conn.execute(query.order_by(c.placed_at, c.id).limit(CHUNK)).all()
        yield [(row.order_id, document(row.data)) for row in rows]
        if len(rows) < CHUNK:
            return
        last = (rows[-1].placed_at, rows[-1].id)


def chunked(rows: Iterator[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    """``rows`` in lists of at most ``size``."""
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def document(text: str) -> dict[str, Any]:
    """A stored record's JSON document (an empty one if it is not an object)."""
    value = json.loads(text)
    return value if isinstance(value, dict) else {}
