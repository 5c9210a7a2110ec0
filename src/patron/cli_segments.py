"""``patron segments``: an account's dynamic segments (list, show, create, delete, and a dry-run
count of a rule)."""

from __future__ import annotations

from typing import Any

import click
import msgspec
from rich.table import Table
from sqlalchemy import Connection

from patron import accounts, segments
from patron.cli_common import account_option, json_option, out, print_json, run
from patron.errors import Invalid, NotFound
from patron.profiles.segments import evaluate, members
from patron.profiles.segments import rules as r

#: The most segments ``patron segments list`` shows (an account has at most ``members.MAX_SEGMENTS``).
MOST = members.MAX_SEGMENTS


def _rule(text: str) -> r.Rule:
    try:
        raw = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise click.BadParameter(f"is not JSON: {exc}", param_hint="--rules") from exc
    try:
        return r.parse(raw)
    except Invalid as exc:
        raise click.BadParameter(exc.detail, param_hint="--rules") from exc


def _as_dict(view: members.SegmentView) -> dict[str, Any]:
    return msgspec.to_builtins(view)  # type: ignore[no-any-return]


@click.group(name="segments")
def segments_group() -> None:
    """An account's dynamic segments (docs/segments.md)."""


@segments_group.command("list")
@account_option()
@json_option
@click.pass_context
def segments_list(ctx: click.Context, account_hash: str, as_json: bool) -> None:
    """The account's segments, with their sizes."""
    found = run(
        ctx,
        lambda conn: members.read(conn, accounts.get_account(conn, account_hash).id, limit=MOST),
        write=False,
    )
    if as_json:
        print_json([_as_dict(view) for view in found])
        return
    table = Table("id", "name", "size", "status", "updated")
    for view in found:
        table.add_row(view.id, view.name, f"{view.size:,}", view.status, view.timestamp_updated)
    out.print(table)


@segments_group.command("show")
@account_option()
@click.argument("segment_id")
@json_option
@click.pass_context
def segments_show(ctx: click.Context, account_hash: str, segment_id: str, as_json: bool) -> None:
    """One segment, with its rules."""
    key = members.segment_key(segment_id)

    def read(conn: Connection) -> list[members.SegmentView]:
        account = accounts.get_account(conn, account_hash)
        return [] if key is None else members.read(conn, account.id, segment_id=key)

    found = run(ctx, read, write=False)
    if not found:
        raise click.ClickException(f"no segment {segment_id!r} in this account")
    if as_json:
        print_json(_as_dict(found[0]))
        return
    view = found[0]
    click.echo(f"segment: {view.id} {view.name}")
    click.echo(f"size:    {view.size:,} ({view.status})")
    click.echo(f"rules:   {msgspec.json.encode(view.rules).decode()}")


@segments_group.command("create")
@account_option()
@click.option("--name", required=True, help="The segment's name.")
@click.option(
    "--rules", "rules_text", required=True, help='The rule, as JSON: {"all": [...]} (docs/segments.md).'
)
@json_option
@click.pass_context
def segments_create(ctx: click.Context, account_hash: str, name: str, rules_text: str, as_json: bool) -> None:
    """Create a segment; the worker builds its membership."""
    rule = _rule(rules_text)
    if not 1 <= len(name) <= 200:
        raise click.BadParameter("is 1 to 200 characters", param_hint="--name")

    def create(conn: Connection) -> members.SegmentView:
        account = accounts.get_account(conn, account_hash)
        segment_id = segments.create(conn, account.id, name, rule, accounts.now())
        return members.read(conn, account.id, segment_id=segment_id)[0]

    view = run(ctx, create)
    if as_json:
        print_json(_as_dict(view))
        return
    click.echo(f"created segment {view.id}: the worker builds its membership")


@segments_group.command("delete")
@account_option()
@click.argument("segment_id")
@click.pass_context
def segments_delete(ctx: click.Context, account_hash: str, segment_id: str) -> None:
    """Delete a segment, its members and its changes."""
    key = members.segment_key(segment_id)

    def remove(conn: Connection) -> None:
        account = accounts.get_account(conn, account_hash)
        if key is None or not members.remove(conn, account.id, key):
            raise NotFound(f"no segment {segment_id!r} in this account")

    run(ctx, remove)
    click.echo(f"deleted segment {segment_id}")


@segments_group.command("count")
@account_option()
@click.option("--rules", "rules_text", required=True, help="The rule, as JSON (docs/segments.md).")
@json_option
@click.pass_context
def segments_count(ctx: click.Context, account_hash: str, rules_text: str, as_json: bool) -> None:
    """How many profiles a rule holds now (a dry run: nothing is saved)."""
    rule = _rule(rules_text)

    def count(conn: Connection) -> int:
        return evaluate.count(conn, accounts.get_account(conn, account_hash).id, rule, accounts.now())

    found = run(ctx, count, write=False)
    if as_json:
        print_json({"count": found})
        return
    click.echo(f"{found:,}")
