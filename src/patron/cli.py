"""The ``patron`` command: serve, work, migrate; operators, profiles, the integration check and
unsubscribes here, accounts and keys in ``cli_accounts``, the queue in ``cli_queue``, moving records in
``cli_transfer``."""

from __future__ import annotations

import os
import sqlite3
import sys
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import click
import msgspec
from rich.table import Table
from sqlalchemy import Connection

from patron import __version__, accounts, errors, logs, memory, metrics, operators, report
from patron.cli_accounts import COMMANDS as account_commands
from patron.cli_common import (
    account_option,
    hash_column,
    json_option,
    one_line_errors,
    opened,
    out,
    print_json,
    run,
)
from patron.cli_queue import COMMANDS as queue_commands
from patron.cli_segments import COMMANDS as segment_commands
from patron.cli_transfer import COMMANDS as transfer_commands
from patron.cli_webhooks import COMMANDS as webhook_commands
from patron.config import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, Settings
from patron.entities import Page
from patron.ingest.queue import enqueue_operation
from patron.profiles import build, lists, read
from patron.profiles.link import link_stored
from patron.profiles.operations import UNSUBSCRIBE
from patron.profiles.requests import Unsubscribe
from patron.store import chunks, lock_account, open_store

DEMO_ACCOUNT = "demo"

#: ``--log-level``: the levels of Python's logging, in any case.
LOG_LEVEL = click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="The least severe log lines written (INFO: one line per request).",
)


@click.group()
@click.version_option(__version__, prog_name="patron")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="PATRON_DATA_DIR",
    show_envvar=True,
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="Where the SQLite database (made by patron migrate) and the generated certificates live.",
)
@click.option(
    "--database-url",
    envvar="PATRON_DATABASE_URL",
    show_envvar=True,
    default=None,
    metavar="URL",
    help="The database: postgresql://user@host:5432/patron, or sqlite:///PATH (default: patron.db in"
    " the data directory).",
)
@click.pass_context
def main(ctx: click.Context, data_dir: Path, database_url: str | None) -> None:
    """Patron: a customer data platform that speaks the Ometria Data API v2.

    Start with patron migrate (it creates the database), then patron serve. Every other setting is a
    PATRON_* environment variable (docs/operations.md)."""
    try:
        settings = Settings()
    except ValueError as exc:  # a PATRON_* variable that is not a valid value
        raise click.UsageError(str(exc)) from exc
    ctx.obj = replace(settings, data_dir=data_dir, database_url=database_url or None)


# serve and migrate --------------------------------------------------------------------------------


@main.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="The address to listen on.")
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The port to listen on.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The certificate (chain) to serve, PEM; with --tls-key (default: a local CA's, made once).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The private key of --tls-cert, PEM.",
)
@click.option(
    "--behind-proxy",
    is_flag=True,
    help="Serve plain HTTP for a TLS-terminating proxy or load balancer in front (never exposed directly).",
)
@LOG_LEVEL
@click.option("--no-worker", is_flag=True, help="Do not start a worker: run patron worker processes instead.")
@click.option(
    "--workers",
    "api_processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="API processes behind the one port.",
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
    """Serve the API over HTTPS, with a worker. On SQLite an existing database is brought up to date
    first; a data directory without one is refused (patron migrate creates it)."""
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
    os.environ["PATRON_LOG_LEVEL"] = log_level.upper()  # the API processes of --workers N read it
    with opened(settings):  # a database that cannot be opened is said here, before serving
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
    """Apply queued pushes (patron serve runs one itself unless --no-worker).

    It is woken by patron serve through a pipe, or on PostgreSQL by LISTEN/NOTIFY."""
    import signal
    import threading

    from patron.ingest.worker import pipe_waker, run
    from patron.retention import Pruner
    from patron.runtime import queue_kinds
    from patron.segments import Rechecker
    from patron.tracking.abandonment import Sweeper
    from patron.webhooks.delivery import Deliverer

    logs.configure(log_level.upper())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with opened(ctx.obj) as store, suppress(KeyboardInterrupt):
        metrics.share(ctx.obj.resolved_metrics_dir)  # counted with the host's API processes (/metrics)
        wait = pipe_waker(sys.stdin.fileno()) if wake_stdin else store.waiter(stop)
        settings: Settings = ctx.obj
        if settings.smtp_url:
            from patron.email.outbox import Sender, Smtp

            smtp = Smtp.parse(settings.smtp_url)
            Sender(store, smtp, stop, backoff=settings.smtp_backoff, lease=settings.smtp_lease).thread.start()
        poll = min(5.0, settings.session_idle / 4)
        Sweeper(store, stop, idle=settings.session_idle, poll=poll).thread.start()
        Pruner(store, settings.retention, stop).thread.start()
        Rechecker(store, stop).thread.start()
        Deliverer(store, settings.webhooks, stop).thread.start()
        memory.settle()
        run(store, queue_kinds(), stop, wait, idle_poll)
        stop.set()  # the sender, the sweeper, the pruner and the webhooks' deliverer, too


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create the database, or bring its schema up to date (PostgreSQL: run it before starting servers
    and workers)."""
    from patron.store.migrate import current_revision

    with one_line_errors():
        notes = open_store(ctx.obj).migrate()
    for note in notes:
        click.echo(note)
    revision = run(ctx, current_revision, write=False)
    click.echo(f"database at revision {revision}")


@main.command()
@click.option(
    "--to",
    "target",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="The new file to write the copy to (it must not exist).",
)
@click.pass_context
def backup(ctx: click.Context, target: Path) -> None:
    """Copy the SQLite database, consistently, while servers and workers keep running (restore: put
    the file in a new data directory as patron.db). On PostgreSQL use pg_dump instead."""
    settings: Settings = ctx.obj
    try:
        open_store(settings).backup(target)
    except errors.PatronError as exc:
        raise click.ClickException(str(exc)) from exc
    except (OSError, sqlite3.Error) as exc:
        raise click.ClickException(f"the backup failed: {exc}") from exc
    click.echo(f"backed up to {target} ({target.stat().st_size:,} bytes)")


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
@click.option("--email", required=True, help="The operator's email address: what they sign in with.")
@click.option(
    "--role",
    type=click.Choice(operators.ROLES),
    required=True,
    help="viewer: reads the accounts granted; admin: also manages their keys, templates, unsubscribes"
    " and GDPR requests; owner: every account, and the operators.",
)
@click.option("--account", "account_hashes", multiple=True, help="An account they may see (repeat for more).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (else one is made up).")
@click.pass_context
def operators_create(
    ctx: click.Context, email: str, role: str, account_hashes: tuple[str, ...], password_stdin: bool
) -> None:
    """Create an operator; prints a new password unless one is given on stdin."""
    password, hashed = _password(password_stdin)
    operator = run(
        ctx, lambda conn: operators.create_operator(conn, email, role, hashed, list(account_hashes))
    )
    _show_operator(operator, password)


@operators_group.command("list")
@json_option
@click.pass_context
def operators_list(ctx: click.Context, as_json: bool) -> None:
    """Every operator, their role, state and accounts."""
    found = run(ctx, operators.list_operators, write=False)
    if as_json:
        print_json([msgspec.to_builtins(o) for o in found])
        return
    table = Table("email", "role", "state", hash_column("accounts"), "last sign-in")
    for o in found:
        state = "disabled" if o.disabled else "active"
        granted = "every account" if o.role == "owner" else "\n".join(o.accounts)
        table.add_row(o.email, o.role, state, granted, str(o.last_signin_at or "never"))
    out.print(table)


@operators_group.command("disable")
@click.option("--email", required=True, help="The operator's email address.")
@click.pass_context
def operators_disable(ctx: click.Context, email: str) -> None:
    """The operator may no longer sign in; their sessions end now."""
    operator = run(ctx, lambda conn: operators.disable_operator(conn, email))
    click.echo(f"disabled {operator.email}")


@operators_group.command("reset-password")
@click.option("--email", required=True, help="The operator's email address.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (else one is made up).")
@click.pass_context
def operators_reset_password(ctx: click.Context, email: str, password_stdin: bool) -> None:
    """A new password (printed unless given on stdin); the operator's sessions end and a lock lifts."""
    password, hashed = _password(password_stdin)
    operator = run(ctx, lambda conn: operators.set_password(conn, email, hashed))
    _show_operator(operator, password)


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

    account, key = run(ctx, ensure)
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


@main.group(name="profiles")
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


@main.command(name="report")
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


@main.command()
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


for _command in [
    *account_commands,
    *queue_commands,
    *segment_commands,
    *transfer_commands,
    *webhook_commands,
]:
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
