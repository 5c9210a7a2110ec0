"""The compatibility warnings the API recorded: what it read leniently (``push_errors`` rows of
severity ``warning``), by kind."""

from __future__ import annotations

from sqlalchemy import func, select

from patron.report.rules import Context, Sample, Tally, rule
from patron.store.schema import push_errors


@rule(
    "push.warnings",
    "warning",
    "Pushes were accepted with warnings: values read leniently (a timestamp without an offset, a wrong "
    "content type...) that a strict account, or Ometria, may refuse.",
    "Read GET /v2/push/_errors and send what each warning names as the API reference says.",
)
def push_warnings(ctx: Context, tally: Tally) -> None:
    e = push_errors.c
    warned = (e.account_id == ctx.account_id) & (e.severity == "warning")
    kinds = ctx.conn.execute(
        select(func.coalesce(e.kind, "other"), func.count()).where(warned).group_by(e.kind).order_by(e.kind)
    ).all()
    if kinds:
        tally.summary = ", ".join(f"{kind}: {n}" for kind, n in kinds)
    tally.count = sum(n for _, n in kinds)
    page = (
        select(e.record_id, e.request_id, e.kind, e.error_path, e.error_message)
        .where(warned)
        .order_by(e.id)
        .limit(tally.limit)
        .offset(tally.offset)
    )
    for row in ctx.conn.execute(page):
        value = {"kind": row.kind, "field": row.error_path, "detail": row.error_message}
        tally.samples.append(Sample(row.record_id or row.request_id, value))
