"""``patron queue`` and ``patron errors``: an account's import queue, and the latest push errors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from rich.table import Table

from patron import accounts
from patron.cli_common import account_option, json_option, out, print_json, run
from patron.ingest.queue import Backlog, PushError, backlog_of, latest_errors

#: The most push errors ``patron errors`` shows at once.
MOST_ERRORS = 1000


def _age(oldest: datetime | None, now: datetime) -> str:
    """How long the oldest queued row has waited, in words (h m s)."""
    if oldest is None:
        return "nothing queued"
    seconds = max(0, int((now - oldest).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60}m {rest % 60}s" if hours else f"{rest // 60}m {rest % 60}s"


@click.command("queue")
@account_option()
@json_option
@click.pass_context
def queue_command(ctx: click.Context, account_hash: str, as_json: bool) -> None:
    """The account's backlog: rows and records queued by type, how long the oldest has waited, and
    what the worker applied in the last hour."""

    def read(conn: Any) -> tuple[Backlog, datetime]:
        account = accounts.get_account(conn, account_hash)
        now = accounts.now()
        return backlog_of(conn, account.id, now), now

    backlog, now = run(ctx, read, write=False)
    oldest = backlog.oldest_received_at
    age = None if oldest is None else max(0.0, (now - oldest).total_seconds())
    if as_json:
        print_json(
            {
                "account_hash": account_hash,
                "queued": {
                    kind: {
                        "rows": q.rows,
                        "records": q.records,
                        "oldest_received_at": q.oldest_received_at.isoformat(),
                    }
                    for kind, q in backlog.queued.items()
                },
                "queued_rows": sum(q.rows for q in backlog.queued.values()),
                "queued_records": sum(q.records for q in backlog.queued.values()),
                "oldest_queued_at": oldest.isoformat() if oldest else None,
                "oldest_queued_seconds": age,
                "applied_last_hour": {
                    "rows": backlog.applied_rows_last_hour,
                    "records": backlog.applied_records_last_hour,
                },
            }
        )
        return
    table = Table("type", "rows queued", "records queued", "oldest waiting")
    for kind, q in backlog.queued.items():
        table.add_row(kind, str(q.rows), str(q.records), _age(q.oldest_received_at, now))
    rows = sum(q.rows for q in backlog.queued.values())
    records = sum(q.records for q in backlog.queued.values())
    click.echo(f"{account_hash}: {rows} rows ({records} records) queued; oldest waiting {_age(oldest, now)}")
    if backlog.queued:
        out.print(table)
    applied = f"{backlog.applied_rows_last_hour} rows ({backlog.applied_records_last_hour} records)"
    click.echo(f"applied in the last hour: {applied}")


def _error(e: PushError) -> dict[str, Any]:
    return {
        "timestamp": e.timestamp,
        "request_id": e.request_id,
        "severity": e.severity,
        "record_type": e.record_type,
        "index": e.index,
        "id": e.id,
        "path": e.error_path,
        "message": e.error_message,
        "kind": e.kind,
    }


@click.command("errors")
@account_option()
@click.option(
    "--limit",
    type=click.IntRange(1, MOST_ERRORS),
    default=20,
    show_default=True,
    help="How many of the latest push errors to show.",
)
@json_option
@click.pass_context
def errors_command(ctx: click.Context, account_hash: str, limit: int, as_json: bool) -> None:
    """The account's latest push errors, newest first: rejected records, and lenient readings of
    accepted ones (severity warning), each with its time, request id, type, record id, path and message."""

    def read(conn: Any) -> list[PushError]:
        account = accounts.get_account(conn, account_hash)
        return latest_errors(conn, account.id, limit, 0)

    found = [_error(e) for e in run(ctx, read, write=False)]
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo(f"{account_hash}: no push errors")
        return
    table = Table("time", "request id", "severity", "type", "record id", "path", "message")
    table.columns[1].no_wrap = True
    for e in found:
        at = datetime.fromisoformat(e["timestamp"])
        table.add_row(
            f"{at:%Y-%m-%d %H:%M:%S}",
            e["request_id"],
            e["severity"],
            e["record_type"],
            e["id"] or "",
            e["path"],
            e["message"],
        )
    out.print(table)
