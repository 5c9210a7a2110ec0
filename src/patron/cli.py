"""The ``patron`` command: serve, migrate, and manage accounts and API keys."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
from rich.console import Console
from rich.table import Column, Table
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from patron import __version__, accounts, errors, logs, memory, metrics, operators, ratelimits, report
from patron.cli_transfer import COMMANDS as transfer_commands
from patron.config import DEFAULT_HOST, DEFAULT_PORT, Settings
from patron.entities import Page
from patron.ingest.queue import enqueue_operation
from patron.profiles import build, lists, read
from patron.profiles.link import link_stored
from patron.profiles.operations import UNSUBSCRIBE
from patron.profiles.requests import Unsubscribe
from patron.store import Store, chunks, lock_account, open_store
from patron.tracking.abandonment import Sweeper

T = TypeVar("T")
out = Console(highlight=False, soft_wrap=True)
DEMO_ACCOUNT = "demo"


@contextmanager
def _store(settings: Settings) -> Iterator[Store]:
    """The store, started; a database that cannot be opened is a one-line error."""
    try:
        store = open_store(settings)
        store.start()
    except (ValueError, OSError, SQLAlchemyError) as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise click.ClickException(f"cannot open the database: {detail}") from exc
    try:
        yield store
    finally:
        store.close()


#: ``--log-level``: the levels of Python's logging, in any case.
LOG_LEVEL = click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="The least severe log lines written (INFO: one line per request).",
)


def _run(ctx: click.Context, work: Callable[[Connection], T], *, write: bool = True) -> T:
    """Run one unit of work against the store, turning domain errors into a clean CLI error."""
    settings: Settings = ctx.obj
    with _store(settings) as store:
        try:
            return store.write_blocking(work) if write else store.read_blocking(work)
        except errors.PatronError as exc:
            raise click.ClickException(str(exc)) from exc


def hash_column(header: str) -> Column:
    """A table's column of account hashes (one a line): never cut or folded, however narrow the terminal."""
    return Column(header, no_wrap=True, min_width=16, overflow="ignore")


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group()
@click.version_option(__version__, prog_name="patron")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="PATRON_DATA_DIR",
    default="./patron-data",
    show_default=True,
    help="Where the SQLite database and the generated certificates live.",
)
@click.option(
    "--database-url",
    envvar="PATRON_DATABASE_URL",
    default=None,
    help="Database URL; default sqlite:///<data dir>/patron.db.",
)
@click.pass_context
def main(ctx: click.Context, data_dir: Path, database_url: str | None) -> None:
    """Patron: a customer data platform that speaks the Ometria Data API v2."""
    try:
        settings = Settings()
    except ValueError as exc:  # a PATRON_* variable that is not a valid value
        raise click.UsageError(str(exc)) from exc
    ctx.obj = replace(settings, data_dir=data_dir, database_url=database_url or None)


# serve and migrate --------------------------------------------------------------------------------


@main.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True)
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The port to listen on.",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--behind-proxy",
    is_flag=True,
    help="Serve plain HTTP for a TLS-terminating proxy or load balancer in front (never exposed directly).",
)
@LOG_LEVEL
@click.option(
    "--no-worker", is_flag=True, help="Do not start a worker: run `patron worker` processes instead."
)
@click.option(
    "--workers",
    "api_processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="API processes.",
)
@click.option("--bench-noop", is_flag=True, hidden=True, help="Serve POST /v2/_bench/noop for bench/push.py.")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    behind_proxy: bool,
    log_level: str,
    no_worker: bool,
    api_processes: int,
    bench_noop: bool,
) -> None:
    """Serve the API over HTTPS (applying migrations first on SQLite)."""
    from patron.server import serve as run_server

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("give both --tls-cert and --tls-key, or neither")
    if behind_proxy and tls_cert is not None:
        raise click.UsageError("--behind-proxy serves plain HTTP; it takes no certificate")
    settings = replace(
        ctx.obj,
        host=host,
        port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        behind_proxy=behind_proxy,
        bench_noop=bench_noop,
        run_worker=not no_worker,
        api_processes=api_processes,
    )
    logs.configure(log_level.upper())
    with _store(settings):  # a database that cannot be opened is said here, before serving
        pass
    run_server(settings, announce=lambda line: click.echo(line, err=True))


@main.command()
@click.option("--wake-stdin", is_flag=True, hidden=True, help="Woken by bytes on stdin; exit at its end.")
@click.option(
    "--idle-poll",
    default=30.0,
    show_default=True,
    help="Seconds between looks at an idle queue (a safety net).",
)
@LOG_LEVEL
@click.pass_context
def worker(ctx: click.Context, wake_stdin: bool, idle_poll: float, log_level: str) -> None:
    """Apply queued pushes (``patron serve`` runs one itself unless ``--no-worker``).

    It is woken by ``patron serve`` through a pipe, or on PostgreSQL by ``LISTEN/NOTIFY``."""
    import signal
    import threading

    from patron.ingest.worker import pipe_waker, run
    from patron.runtime import queue_kinds

    logs.configure(log_level.upper())
    metrics.share(ctx.obj.resolved_metrics_dir)  # counted with the host's API processes (/metrics)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with _store(ctx.obj) as store, suppress(KeyboardInterrupt):
        wait = pipe_waker(sys.stdin.fileno()) if wake_stdin else store.waiter(stop)
        settings: Settings = ctx.obj
        if settings.smtp_url:
            from patron.email.outbox import Sender, Smtp

            smtp = Smtp.parse(settings.smtp_url)
            Sender(store, smtp, stop, backoff=settings.smtp_backoff, lease=settings.smtp_lease).thread.start()
        poll = min(5.0, settings.session_idle / 4)
        Sweeper(store, stop, idle=settings.session_idle, poll=poll).thread.start()
        memory.settle()
        run(store, queue_kinds(), stop, wait, idle_poll)
        stop.set()  # the sender and the sweeper, too


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Bring the database schema up to date (PostgreSQL: run it before starting servers and workers)."""
    from patron.store.migrate import current_revision

    open_store(ctx.obj).migrate()
    revision = _run(ctx, current_revision, write=False)
    click.echo(f"database at revision {revision}")


# operators ---------------------------------------------------------------------------------------


@main.group(name="operators")
def operators_group() -> None:
    """The people who sign in to the console (/console): create, list, disable, reset a password."""


def _password(from_stdin: bool) -> tuple[str | None, str]:
    """A password read from stdin (its first line) or a new random one, and its hash; the password is
    returned only when it was made up here (to be shown once)."""
    password = sys.stdin.readline().rstrip("\r\n") if from_stdin else operators.new_password()
    try:
        hashed = operators.hash_password(password)
    except errors.PatronError as exc:
        raise click.ClickException(str(exc)) from exc
    return (None if from_stdin else password), hashed


def _show_operator(operator: operators.Operator, password: str | None) -> None:
    click.echo(f"operator: {operator.email} ({operator.role})")
    click.echo(
        f"accounts: {'every account' if operator.role == 'owner' else ', '.join(operator.accounts) or 'none'}"
    )
    if password is not None:
        click.echo(f"password: {password}")
        click.echo("The password is shown only now; Patron keeps nothing but its argon2id hash.", err=True)


@operators_group.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(operators.ROLES), required=True)
@click.option("--account", "account_hashes", multiple=True, help="An account they may see (repeat for more).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (else one is made up).")
@click.pass_context
def operators_create(
    ctx: click.Context, email: str, role: str, account_hashes: tuple[str, ...], password_stdin: bool
) -> None:
    """Create an operator; prints a new password unless one is given on stdin."""
    password, hashed = _password(password_stdin)
    operator = _run(
        ctx, lambda conn: operators.create_operator(conn, email, role, hashed, list(account_hashes))
    )
    _show_operator(operator, password)


@operators_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def operators_list(ctx: click.Context, as_json: bool) -> None:
    """Every operator, their role, state and accounts."""
    found = _run(ctx, operators.list_operators, write=False)
    if as_json:
        _print_json([msgspec.to_builtins(o) for o in found])
        return
    table = Table("email", "role", "state", hash_column("accounts"), "last sign-in")
    for o in found:
        state = "disabled" if o.disabled else "active"
        granted = "every account" if o.role == "owner" else "\n".join(o.accounts)
        table.add_row(o.email, o.role, state, granted, str(o.last_signin_at or "never"))
    out.print(table)


@operators_group.command("disable")
@click.option("--email", required=True)
@click.pass_context
def operators_disable(ctx: click.Context, email: str) -> None:
    """The operator may no longer sign in; their sessions end now."""
    operator = _run(ctx, lambda conn: operators.disable_operator(conn, email))
    click.echo(f"disabled {operator.email}")


@operators_group.command("reset-password")
@click.option("--email", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (else one is made up).")
@click.pass_context
def operators_reset_password(ctx: click.Context, email: str, password_stdin: bool) -> None:
    """A new password (printed unless given on stdin); the operator's sessions end and a lock lifts."""
    password, hashed = _password(password_stdin)
    operator = _run(ctx, lambda conn: operators.set_password(conn, email, hashed))
    _show_operator(operator, password)


# accounts ----------------------------------------------------------------------------------------


@main.group(name="accounts")
def accounts_group() -> None:
    """Create and list accounts, and set their rate limits."""


@accounts_group.command("create")
@click.option("--name", required=True, help="A name for people, e.g. the shop's name.")
@click.option("--env", "environment", type=click.Choice(accounts.ENVIRONMENTS), default="staging")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def accounts_create(ctx: click.Context, name: str, environment: str, as_json: bool) -> None:
    """Create an account; prints its hash and its first API key (shown only this once)."""
    account, key = _run(ctx, lambda conn: accounts.create_account(conn, name, environment))
    if as_json:
        _print_json(
            {"name": account.name, "environment": environment, "account_hash": account.hash, "api_key": key}
        )
        return
    click.echo(f"account:      {account.name} ({account.environment})")
    click.echo(f"account hash: {account.hash}")
    click.echo(f"api key:      {key}")
    click.echo("The API key is shown only now; Patron keeps nothing but its SHA-256.", err=True)


@accounts_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def accounts_list(ctx: click.Context, as_json: bool) -> None:
    """List every account with its effective rate limits."""
    found = _run(ctx, accounts.list_accounts, write=False)
    if as_json:
        _print_json(
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
    table = Table(hash_column("hash"), "name", "environment", "limits", "created")
    for a in found:
        limits = ", ".join(f"{k} {v}" for k, v in a.effective_limits.items())
        table.add_row(a.hash, a.name, a.environment, limits, f"{a.created_at:%Y-%m-%d %H:%M}")
    out.print(table)


def _limit_option(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        f"--{name}",
        metavar="RATE",
        help=f"{name} requests: e.g. {ratelimits.DEFAULT_LIMITS[name]} (default), 'unlimited', 'default'.",
    )


@accounts_group.command("set-limits")
@click.argument("account_hash")
@_limit_option("data")
@_limit_option("push")
@_limit_option("email")
@_limit_option("gdpr")
@_limit_option("merge")
@click.option("--queue", type=click.IntRange(min=1), help="Most queued push records before 429 (50000).")
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
    account = _run(ctx, lambda conn: accounts.set_limits(conn, account_hash, changes, queue))
    for name, value in account.effective_limits.items():
        click.echo(f"{name:6} {value}")
    click.echo(f"queue  {account.queue_limit} records")


@accounts_group.command("set-matching")
@click.argument("account_hash")
@click.option(
    "--phone", type=click.Choice(["on", "off"]), required=True, help="Match profiles by phone number."
)
@click.pass_context
def accounts_set_matching(ctx: click.Context, account_hash: str, phone: str) -> None:
    """Choose which identifiers join contacts into one profile (customer id and email always do)."""
    _run(ctx, lambda conn: accounts.set_phone_matching(conn, account_hash, phone == "on"))
    click.echo(f"phone number matching {phone} for {account_hash}")


@accounts_group.command("set-strict")
@click.option("--account", "account_hash", required=True, help="The account's hash.")
@click.argument("state", type=click.Choice(["on", "off"]))
@click.pass_context
def accounts_set_strict(ctx: click.Context, account_hash: str, state: str) -> None:
    """Refuse (on) or read with a warning (off, the default) what Ometria may not take: a body sent
    with a Content-Type other than JSON, a timestamp without an offset, an empty array for an object."""
    _run(ctx, lambda conn: accounts.set_strict(conn, account_hash, state == "on"))
    shown = "refused" if state == "on" else "read with a warning"
    click.echo(f"strict {state} for {account_hash}: lenient readings are {shown}")


@accounts_group.command("set-link-domains")
@click.argument("account_hash")
@click.argument("domains", nargs=-1)
@click.pass_context
def accounts_set_link_domains(ctx: click.Context, account_hash: str, domains: tuple[str, ...]) -> None:
    """Choose the sites links in the account's email may lead to (each with its subdomains). With
    none, a link may lead to the domain of the message's sender."""
    kept = _run(ctx, lambda conn: accounts.set_link_domains(conn, account_hash, list(domains)))
    shown = ", ".join(kept) or "the domain of each message's sender"
    click.echo(f"link domains for {account_hash}: {shown}")


@main.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Create the demo staging account on first run and print how to call it."""
    settings: Settings = ctx.obj

    def ensure(conn: Connection) -> tuple[accounts.Account, str | None]:
        existing = accounts.find_account(conn, DEMO_ACCOUNT, "staging")
        if existing is not None:
            return existing, None
        return accounts.create_account(conn, DEMO_ACCOUNT, "staging")

    account, key = _run(ctx, ensure)
    if key is None:
        click.echo(f"demo account {account.hash} exists; its key was printed when it was created.")
        click.echo(f"A new key: patron keys create --account {account.hash}")
        return
    ca = (settings.tls_dir / "ca.pem").resolve()
    click.echo("Demo staging account created.")
    click.echo(f"  account hash: {account.hash}")
    click.echo(f"  api key:      {key}   (shown only now)")
    click.echo("Try it once the server is up:")
    click.echo(f"  curl --cacert {ca} -H 'X-Ometria-Auth: {key}' https://localhost:{DEFAULT_PORT}/v2/account")
    click.echo("The console, for people: make an operator, then open it and sign in:")
    click.echo("  .venv/bin/patron operators create --email you@example.com --role owner")
    click.echo(f"  https://localhost:{DEFAULT_PORT}/console")


# keys --------------------------------------------------------------------------------------------


@main.group(name="keys")
def keys_group() -> None:
    """Create, list and revoke API keys."""


@keys_group.command("create")
@click.option("--account", "account_hash", required=True, help="The account's hash.")
@click.option("--label", default="", help="What the key is for.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def keys_create(ctx: click.Context, account_hash: str, label: str, as_json: bool) -> None:
    """Create an API key for an account (shown only this once)."""
    api_key, key = _run(ctx, lambda conn: accounts.create_key(conn, account_hash, label))
    if as_json:
        _print_json({"id": api_key.id, "account_hash": account_hash, "label": label, "api_key": key})
        return
    click.echo(f"key id:  {api_key.id}")
    click.echo(f"api key: {key}")
    click.echo("The API key is shown only now; Patron keeps nothing but its SHA-256.", err=True)


@keys_group.command("list")
@click.option("--account", "account_hash", required=True, help="The account's hash.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def keys_list(ctx: click.Context, account_hash: str, as_json: bool) -> None:
    """List an account's keys (ids and dates; keys themselves are never stored)."""
    found = _run(ctx, lambda conn: accounts.list_keys(conn, account_hash), write=False)
    if as_json:
        _print_json(
            [
                {
                    "id": k.id,
                    "label": k.label,
                    "created_at": k.created_at.isoformat(),
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                }
                for k in found
            ]
        )
        return
    table = Table("id", "label", "created", "revoked")
    for k in found:
        revoked = f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else ""
        table.add_row(k.id, k.label, f"{k.created_at:%Y-%m-%d %H:%M}", revoked)
    out.print(table)


@keys_group.command("revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key by its id; it stops working within seconds."""
    api_key = _run(ctx, lambda conn: accounts.revoke_key(conn, key_id))
    click.echo(f"revoked {api_key.id} of account {api_key.account_hash}")


@main.group(name="profiles")
def profiles_group() -> None:
    """The single customer view."""


@profiles_group.command("rebuild")
@click.option("--account", "account_hash", help="Only this account (default: every account).")
@click.pass_context
def profiles_rebuild(ctx: click.Context, account_hash: str | None) -> None:
    """Recompute every profile from the stored records, and say how many changed (0 when the worker
    kept them up to date). Records not linked to a profile yet (stored by an older version) are
    linked first."""
    settings: Settings = ctx.obj
    with _store(settings) as store:
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


@main.command(name="report")
@click.option("--account", "account_hash", required=True, help="The account's hash.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def report_command(ctx: click.Context, account_hash: str, as_json: bool) -> None:
    """The integration check: whether the account's data is right before it goes live (exit status 1
    when it is not ready)."""

    def build(conn: Connection) -> report.Report:
        account = accounts.get_account(conn, account_hash)
        return report.report(conn, account.id, accounts.now())

    found = _run(ctx, build, write=False)
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


@main.command()
@click.option("--account", "account_hash", required=True, help="The account's hash.")
@click.option("--email", required=True, help="The email address to unsubscribe.")
@click.option("--reason", help="Why, as GET /v2/unsubscribes shows it.")
@click.pass_context
def unsubscribe(ctx: click.Context, account_hash: str, email: str, reason: str | None) -> None:
    """Unsubscribe an email from marketing, as the account's operator (type "app")."""
    request_id = str(uuid.uuid4())

    def queue(conn: Connection) -> None:
        account = accounts.get_account(conn, account_hash)
        if not read.by_email(conn, account.id, email, Page()):
            raise accounts.AccountError(f"no profile of account {account_hash} has the email {email!r}")
        body = Unsubscribe(email, "app", reason)
        enqueue_operation(
            conn, account.id, account.queue_limit, request_id, UNSUBSCRIBE, body, accounts.now()
        )

    _run(ctx, queue)
    click.echo(f"queued {request_id}: the worker applies it after the pushes before it")


for _command in transfer_commands:
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
