"""``patron webhooks``: an account's webhook endpoints (list, create, delete, enable, disable) and the
replay of a time range of their events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

import click
import msgspec
from rich.table import Table
from sqlalchemy import Connection

from patron import accounts, replays
from patron.cli_common import (
    Moment,
    account_option,
    hash_column,
    iso,
    json_option,
    minute,
    out,
    print_json,
    run,
)
from patron.config import Settings
from patron.errors import PatronError
from patron.webhooks import endpoints
from patron.webhooks.requests import EndpointUpdate, EventType, NewEndpoint, Replay

EVENT_TYPES = list(get_args(EventType))


def _json(endpoint: endpoints.Endpoint) -> dict[str, Any]:
    shown: dict[str, Any] = msgspec.to_builtins(endpoint)
    return shown


@click.group(name="webhooks")
def webhooks_group() -> None:
    """An account's webhook endpoints (docs/webhooks.md)."""


@webhooks_group.command("list")
@account_option()
@json_option
@click.pass_context
def list_command(ctx: click.Context, account_hash: str, as_json: bool) -> None:
    """The account's endpoints (never their secrets)."""

    def read(conn: Connection) -> list[endpoints.Endpoint]:
        return endpoints.read(conn, accounts.get_account(conn, account_hash).id)

    found = run(ctx, read, write=False)
    if as_json:
        print_json([_json(e) for e in found])
        return
    table = Table(hash_column("id"), "url", "event types", "enabled", "failures", "created")
    for e in found:
        state = "yes" if e.enabled else f"no: {e.disabled_reason}"
        table.add_row(e.id, e.url, ", ".join(e.event_types), state, str(e.failures), minute(e.created_at))
    out.print(table)


def _checked(ctx: click.Context, url: str) -> str:
    settings: Settings = ctx.obj
    try:
        return endpoints.checked_url(url, settings.webhooks.allow_networks)
    except PatronError as exc:
        raise click.BadParameter(str(exc).removeprefix("root > url: "), param_hint="--url") from exc


@webhooks_group.command("create")
@account_option()
@click.option("--url", required=True, help="Where events are delivered (https://).")
@click.option(
    "--event-type",
    "event_types",
    multiple=True,
    required=True,
    type=click.Choice(EVENT_TYPES),
    help="An event type to deliver (repeat the option for more).",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(1, 20),
    default=4,
    show_default=True,
    help="The most attempts under way at once to it.",
)
@json_option
@click.pass_context
def create_command(
    ctx: click.Context,
    account_hash: str,
    url: str,
    event_types: tuple[str, ...],
    max_concurrency: int,
    as_json: bool,
) -> None:
    """Add an endpoint; its secret is shown now and never again."""
    body = msgspec.convert(
        {"url": url, "event_types": list(event_types), "max_concurrency": max_concurrency}, NewEndpoint
    )
    checked = _checked(ctx, url)

    def create(conn: Connection) -> endpoints.Endpoint:
        account = accounts.get_account(conn, account_hash)
        return endpoints.create(conn, account.id, body, checked, accounts.now())

    made = run(ctx, create)
    if as_json:
        print_json(_json(made))
        return
    click.echo(f"endpoint {made.id}: {made.url}")
    click.echo(f"secret (shown once): {made.secret}")


#: ``--id``: the endpoint a command acts on.
id_option = click.option("--id", "endpoint_id", required=True, help="The endpoint's id (ep_...).")


def _set_enabled(
    ctx: click.Context, account_hash: str, endpoint_id: str, enabled: bool, as_json: bool
) -> None:
    body = EndpointUpdate(enabled=enabled)

    def change(conn: Connection) -> endpoints.Endpoint:
        account = accounts.get_account(conn, account_hash)
        return endpoints.change(conn, account.id, endpoint_id, body, None, accounts.now())

    changed = run(ctx, change)
    if as_json:
        print_json(_json(changed))
    else:
        click.echo(f"endpoint {changed.id}: {'enabled' if changed.enabled else 'disabled'}")


@webhooks_group.command("enable")
@account_option()
@id_option
@json_option
@click.pass_context
def enable_command(ctx: click.Context, account_hash: str, endpoint_id: str, as_json: bool) -> None:
    """Enable an endpoint: its waiting events are delivered, its failures forgotten."""
    _set_enabled(ctx, account_hash, endpoint_id, True, as_json)


@webhooks_group.command("disable")
@account_option()
@id_option
@json_option
@click.pass_context
def disable_command(ctx: click.Context, account_hash: str, endpoint_id: str, as_json: bool) -> None:
    """Disable an endpoint: its events are kept, and delivered once enabled."""
    _set_enabled(ctx, account_hash, endpoint_id, False, as_json)


@webhooks_group.command("delete")
@account_option()
@id_option
@json_option
@click.pass_context
def delete_command(ctx: click.Context, account_hash: str, endpoint_id: str, as_json: bool) -> None:
    """Delete an endpoint with its events and delivery log."""

    def remove(conn: Connection) -> None:
        endpoints.remove(conn, accounts.get_account(conn, account_hash).id, endpoint_id)

    run(ctx, remove)
    if as_json:
        print_json({"id": endpoint_id, "deleted": True})
    else:
        click.echo(f"endpoint {endpoint_id}: deleted")


@webhooks_group.command("replay")
@account_option()
@id_option
@click.option(
    "--since", type=Moment(), required=True, help="The range's start (ISO 8601; UTC without an offset)."
)
@click.option("--until", type=Moment(), help="The range's end, excluded (default: now).")
@json_option
@click.pass_context
def replay_command(
    ctx: click.Context,
    account_hash: str,
    endpoint_id: str,
    since: datetime,
    until: datetime | None,
    as_json: bool,
) -> None:
    """Deliver again the endpoint's events written in a time range, with their webhook-ids."""
    try:
        body = Replay(since, until or accounts.now())
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc

    def replay(conn: Connection) -> int:
        account = accounts.get_account(conn, account_hash)
        return replays.replay(conn, account.id, endpoint_id, body.since, body.until, accounts.now())

    count = run(ctx, replay)
    if as_json:
        print_json({"id": endpoint_id, "events": count, "since": iso(body.since), "until": iso(body.until)})
    else:
        click.echo(f"endpoint {endpoint_id}: {count} events to deliver again")
