"""The account's customers from the command line: profiles rebuilt, the integration check's report,
and unsubscribes."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import click
import msgspec
from rich.table import Table
from sqlalchemy import Connection

from patron import accounts, errors, report
from patron.cli_common import account_option, json_option, opened, out, run
from patron.config import Settings
from patron.entities import Page
from patron.ingest.queue import enqueue_operation
from patron.profiles import build, lists, read
from patron.profiles.link import link_stored
from patron.profiles.operations import UNSUBSCRIBE
from patron.profiles.requests import Unsubscribe
from patron.store import chunks, lock_account


@click.group(name="profiles")
def profiles_group() -> None:
    """The single customer view."""


@profiles_group.command("rebuild")
@account_option(required=False, help="Only this account's hash (default: every account).")
@click.pass_context
def profiles_rebuild(ctx: click.Context, account_hash: str | None) -> None:
    """Recompute every profile from the stored records, and say how many changed (0 when the worker
    kept them up to date). Records not linked to a profile yet (stored by an older version) are
    linked first."""
    settings: Settings = ctx.obj
    with opened(settings) as store:
        try:
            chosen = store.read_blocking(
                lambda conn: (
                    [accounts.get_account(conn, account_hash)]
                    if account_hash
                    else accounts.list_accounts(conn)
                )
            )
        except errors.PatronError as exc:
            raise click.ClickException(str(exc)) from exc
        for account in chosen:
            linked = store.write_blocking(
                lambda conn, a=account.id: link_stored(conn, a, accounts.now())  # type: ignore[misc]
            )
            ids = store.read_blocking(lambda conn, a=account.id: build.live_profiles(conn, a))  # type: ignore[misc]
            changed = 0
            for chunk in chunks(ids):
                changed += store.write_blocking(
                    lambda conn, a=account.id, c=chunk: _under_claim(  # type: ignore[misc]
                        conn, a, lambda: build.refresh(conn, a, c, accounts.now())
                    )
                )
            recounted = store.write_blocking(
                lambda conn, a=account.id: _under_claim(  # type: ignore[misc]
                    conn, a, lambda: lists.recount(conn, a, accounts.now())
                )
            )
            done = f"{linked} records linked, {len(ids)} profiles recomputed, {changed} changed"
            click.echo(f"{account.hash}: {done}, {recounted} lists recounted")


def _under_claim(conn: Connection, account_id: int, work: Callable[[], int]) -> int:
    """``work``, holding the account's claim, so that no worker round rewrites its profiles meanwhile."""
    lock_account(conn, account_id)
    return work()


@click.command(name="report")
@account_option()
@json_option
@click.pass_context
def report_command(ctx: click.Context, account_hash: str, as_json: bool) -> None:
    """The integration check: whether the account's data is right before it goes live (exit status 1
    when it is not ready)."""

    def build(conn: Connection) -> report.Report:
        account = accounts.get_account(conn, account_hash)
        return report.report(conn, account.id, accounts.now())

    found = run(ctx, build, write=False)
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(found), indent=2).decode())
    else:
        out.print(
            f"{account_hash}: [bold]{found.verdict}[/bold] ({found.errors} errors, {found.warnings} warnings)"
        )
        table = Table("severity", "rule", "count", "samples", "explanation")
        table.columns[1].no_wrap = True
        for f in found.findings:
            shown = ", ".join(s.id for s in f.samples[:3]) + (" ..." if f.count > 3 else "")
            table.add_row(f.severity, f.rule, str(f.count), shown, f.explanation)
        out.print(table)
    if found.verdict != report.READY:
        ctx.exit(1)


@click.command()
@account_option()
@click.option("--email", required=True, help="The email address to unsubscribe.")
@click.option("--reason", help="Why, as GET /v2/unsubscribes shows it.")
@click.pass_context
def unsubscribe(ctx: click.Context, account_hash: str, email: str, reason: str | None) -> None:
    """Unsubscribe an email from marketing, as the account's operator (type "app"); queued, and applied
    by the worker after the pushes before it."""
    request_id = str(uuid.uuid4())

    def queue(conn: Connection) -> None:
        account = accounts.get_account(conn, account_hash)
        if not read.by_email(conn, account.id, email, Page()):
            raise accounts.AccountError(f"no profile of account {account_hash} has the email {email!r}")
        body = Unsubscribe(email, "app", reason)
        enqueue_operation(
            conn, account.id, account.queue_limit, request_id, UNSUBSCRIBE, body, accounts.now()
        )

    run(ctx, queue)
    click.echo(f"queued {request_id}: the worker applies it after the pushes before it")
