"""``patron accounts`` and ``patron keys``: accounts, their settings, and their API keys."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import click
from rich.table import Table

from patron import accounts, ratelimits
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
    time_column,
)

# accounts ----------------------------------------------------------------------------------------


@click.group(name="accounts")
def accounts_group() -> None:
    """Create, list, show and rename accounts, and change their settings."""


@accounts_group.command("create")
@click.option("--name", required=True, help="A name for people, e.g. the shop's name.")
@click.option(
    "--env",
    "environment",
    type=click.Choice(accounts.ENVIRONMENTS),
    default="staging",
    show_default=True,
    help="The account's environment.",
)
@json_option
@click.pass_context
def accounts_create(ctx: click.Context, name: str, environment: str, as_json: bool) -> None:
    """Create an account; prints its hash and its first API key (shown only this once)."""
    account, key = run(ctx, lambda conn: accounts.create_account(conn, name, environment))
    if as_json:
        print_json(
            {"name": account.name, "environment": environment, "account_hash": account.hash, "api_key": key}
        )
        return
    click.echo(f"account:      {account.name} ({account.environment})")
    click.echo(f"account hash: {account.hash}")
    click.echo(f"api key:      {key}")
    click.echo("The API key is shown only now; Patron keeps nothing but its SHA-256.", err=True)


@accounts_group.command("list")
@json_option
@click.pass_context
def accounts_list(ctx: click.Context, as_json: bool) -> None:
    """List every account with its effective rate limits."""
    found = run(ctx, accounts.list_accounts, write=False)
    if as_json:
        print_json(
            [
                {
                    "name": a.name,
                    "environment": a.environment,
                    "account_hash": a.hash,
                    "limits": a.effective_limits,
                    "strict": a.strict,
                    "created_at": a.created_at.isoformat(),
                }
                for a in found
            ]
        )
        return
    table = Table(hash_column("hash"), "name", "environment", "limits", time_column("created"))
    for a in found:
        limits = ", ".join(f"{k} {v}" for k, v in a.effective_limits.items())
        table.add_row(a.hash, a.name, a.environment, limits, minute(a.created_at))
    out.print(table)


@accounts_group.command("show")
@account_option()
@json_option
@click.pass_context
def accounts_show(ctx: click.Context, account_hash: str, as_json: bool) -> None:
    """One account: its name, environment, limits, profile matching, strictness, link domains, how
    many working keys it has, and when it was created."""

    def read(conn: Any) -> tuple[accounts.Account, accounts.AccountSettings]:
        account = accounts.get_account(conn, account_hash)
        return account, accounts.account_settings(conn, account)

    account, more = run(ctx, read, write=False)
    matching = ["customer id", "email", *(["phone"] if more.match_phone else [])]
    if as_json:
        print_json(
            {
                "account_hash": account.hash,
                "name": account.name,
                "environment": account.environment,
                "limits": account.effective_limits,
                "queue_limit": account.queue_limit,
                "matching": matching,
                "strict": account.strict,
                "link_domains": more.link_domains,
                "keys": more.keys,
                "created_at": account.created_at.isoformat(),
            }
        )
        return
    limits = ", ".join(f"{k} {v}" for k, v in account.effective_limits.items())
    click.echo(f"account hash: {account.hash}")
    click.echo(f"name:         {account.name}")
    click.echo(f"environment:  {account.environment}")
    click.echo(f"limits:       {limits}; queue {account.queue_limit} records")
    click.echo(f"matching:     {', '.join(matching)}")
    click.echo(f"strict:       {'on' if account.strict else 'off'}")
    click.echo(f"link domains: {', '.join(more.link_domains) or 'the domain of each message sender'}")
    click.echo(f"keys:         {more.keys} working")
    click.echo(f"created:      {minute(account.created_at)} UTC")


@accounts_group.command("rename")
@account_option()
@click.option("--name", required=True, help="The account's new name, for people.")
@click.pass_context
def accounts_rename(ctx: click.Context, account_hash: str, name: str) -> None:
    """Give an account a new name (its hash and keys stay)."""
    account = run(ctx, lambda conn: accounts.rename_account(conn, account_hash, name))
    click.echo(f"{account.hash} is now named {account.name}")


def _limit_option(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        f"--{name}",
        metavar="RATE",
        help=f"{name} requests: e.g. {ratelimits.DEFAULT_LIMITS[name]} (default), 'unlimited', 'default'.",
    )


@accounts_group.command("set-limits")
@account_option()
@_limit_option("data")
@_limit_option("push")
@_limit_option("email")
@_limit_option("gdpr")
@_limit_option("merge")
@click.option(
    "--queue",
    type=click.IntRange(min=1),
    help=f"Most queued push records before 429 ({accounts.DEFAULT_QUEUE_LIMIT} by default).",
)
@click.pass_context
def accounts_set_limits(
    ctx: click.Context, /, account_hash: str, queue: int | None, **rates: str | None
) -> None:
    """Change an account's rate limits per endpoint class, and its push queue limit."""
    changes = {
        name: (None if value.strip().lower() == "default" else value)
        for name, value in rates.items()
        if value
    }
    if not changes and queue is None:
        raise click.UsageError("give at least one of --data, --push, --email, --gdpr, --merge, --queue")
    account = run(ctx, lambda conn: accounts.set_limits(conn, account_hash, changes, queue))
    for name, value in account.effective_limits.items():
        click.echo(f"{name:6} {value}")
    click.echo(f"queue  {account.queue_limit} records")


@accounts_group.command("set-matching")
@account_option()
@click.option(
    "--phone", type=click.Choice(["on", "off"]), required=True, help="Match profiles by phone number."
)
@click.pass_context
def accounts_set_matching(ctx: click.Context, account_hash: str, phone: str) -> None:
    """Choose which identifiers join contacts into one profile (customer id and email always do)."""
    run(ctx, lambda conn: accounts.set_phone_matching(conn, account_hash, phone == "on"))
    click.echo(f"phone number matching {phone} for {account_hash}")


@accounts_group.command("set-strict")
@account_option()
@click.argument("state", type=click.Choice(["on", "off"]))
@click.pass_context
def accounts_set_strict(ctx: click.Context, account_hash: str, state: str) -> None:
    """Refuse (on) or read with a warning (off, the default) what Ometria may not take: a body sent
    with a Content-Type other than JSON, a timestamp without an offset, an empty array for an object."""
    run(ctx, lambda conn: accounts.set_strict(conn, account_hash, state == "on"))
    shown = "refused" if state == "on" else "read with a warning"
    click.echo(f"strict {state} for {account_hash}: lenient readings are {shown}")


@accounts_group.command("set-link-domains")
@account_option()
@click.argument("domains", nargs=-1)
@click.pass_context
def accounts_set_link_domains(ctx: click.Context, account_hash: str, domains: tuple[str, ...]) -> None:
    """Choose the sites links in the account's email may lead to (each with its subdomains). With
    none, a link may lead to the domain of the message's sender."""
    kept = run(ctx, lambda conn: accounts.set_link_domains(conn, account_hash, list(domains)))
    shown = ", ".join(kept) or "the domain of each message's sender"
    click.echo(f"link domains for {account_hash}: {shown}")


# keys --------------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d{1,4})([dh])")


class Expiry(Moment):
    """When a key stops working: a number of days or hours from now (90d, 12h), or a date or time in
    ISO 8601 (2027-01-31: at its start, UTC; a time without an offset is in UTC)."""

    expected = "neither a duration (90d, 12h) nor an ISO 8601 date or time"

    def moment(self, text: str, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        duration = _DURATION.fullmatch(text)
        if not duration:
            return super().moment(text, param, ctx)
        count, unit = int(duration[1]), duration[2]
        if count == 0:
            self.fail(f"{text!r} is no time at all; give e.g. 90d or 12h", param, ctx)
        return accounts.now() + (timedelta(days=count) if unit == "d" else timedelta(hours=count))


def _state(key: accounts.ApiKey, at: datetime) -> str:
    """working, expired or revoked (the JSON's ``state``)."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= at:
        return "expired"
    return "working"


def _state_shown(key: accounts.ApiKey, at: datetime) -> str:
    """The state as a table shows it: a revoked key's with when."""
    state = _state(key, at)
    return f"revoked {minute(key.revoked_at)}" if state == "revoked" else state


@click.group(name="keys")
def keys_group() -> None:
    """Create, list and revoke an account's API keys."""


@keys_group.command("create")
@account_option()
@click.option("--label", default="", help="What the key is for.")
@click.option(
    "--expires",
    type=Expiry(),
    help="When the key stops working: days or hours from now (90d, 12h) or an ISO 8601 date or time"
    " (a date: at its start, UTC). Default: never.",
)
@click.option("--read-only", is_flag=True, help="The key may only read (GET); any other request gets 403.")
@json_option
@click.pass_context
def keys_create(
    ctx: click.Context,
    account_hash: str,
    label: str,
    expires: datetime | None,
    read_only: bool,
    as_json: bool,
) -> None:
    """Create an API key for an account (shown only this once)."""
    api_key, key = run(
        ctx,
        lambda conn: accounts.create_key(conn, account_hash, label, expires_at=expires, read_only=read_only),
    )
    if as_json:
        print_json(
            {
                "id": api_key.id,
                "account_hash": account_hash,
                "label": label,
                "api_key": key,
                "prefix": api_key.prefix,
                "scope": api_key.scope,
                "expires_at": iso(api_key.expires_at),
            }
        )
        return
    click.echo(f"key id:  {api_key.id}")
    click.echo(f"api key: {key}")
    click.echo(f"scope:   {api_key.scope}")
    click.echo(f"expires: {minute(api_key.expires_at, 'never')}{' UTC' if api_key.expires_at else ''}")
    click.echo("The API key is shown only now; Patron keeps nothing but its SHA-256.", err=True)


@keys_group.command("list")
@account_option()
@json_option
@click.pass_context
def keys_list(ctx: click.Context, account_hash: str, as_json: bool) -> None:
    """List an account's keys: id, first characters, label, scope, dates and last use (the keys
    themselves are never stored)."""
    found = run(ctx, lambda conn: accounts.list_keys(conn, account_hash), write=False)
    at = accounts.now()
    if as_json:
        print_json(
            [
                {
                    "id": k.id,
                    "prefix": k.prefix,
                    "label": k.label,
                    "scope": k.scope,
                    "state": _state(k, at),
                    "created_at": iso(k.created_at),
                    "expires_at": iso(k.expires_at),
                    "last_used_at": iso(k.last_used_at),
                    "revoked_at": iso(k.revoked_at),
                }
                for k in found
            ]
        )
        return
    table = Table(
        hash_column("id"),
        "starts with",
        "label",
        "scope",
        "state",
        time_column("created"),
        time_column("expires"),
        time_column("last used"),
    )
    for k in found:
        shown = f"{k.prefix}..." if k.prefix else "(not kept)"
        table.add_row(
            k.id,
            shown,
            k.label,
            k.scope,
            _state_shown(k, at),
            minute(k.created_at),
            minute(k.expires_at, "never"),
            minute(k.last_used_at, "never"),
        )
    out.print(table)


@keys_group.command("revoke")
@account_option()
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, account_hash: str, key_id: str) -> None:
    """Revoke one of the account's keys by its id (KEY_ID, as keys list shows it); it stops working
    within seconds."""
    api_key = run(ctx, lambda conn: accounts.revoke_key(conn, key_id, account_hash))
    click.echo(f"revoked {api_key.id} of account {api_key.account_hash}")
