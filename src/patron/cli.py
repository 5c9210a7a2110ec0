"""The ``patron`` command: serve, work, migrate, back up, operators and the demo account here; the
other commands in the ``cli_*`` modules (:data:`ELSEWHERE`), each imported only when it runs: accounts
and keys, the queue, profiles and the integration check, segments, webhooks, moving records."""

from __future__ import annotations

import importlib
import os
import sqlite3
import sys
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import click
import msgspec
from rich.table import Table
from sqlalchemy import Connection

from patron import __version__, accounts, errors, logs, memory, operators
from patron.cli_common import (
    hash_column,
    json_option,
    one_line_errors,
    opened,
    out,
    print_json,
    run,
)
from patron.config import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, Settings
from patron.store import open_store

DEMO_ACCOUNT = "demo"

#: ``--log-level``: the levels of Python's logging, in any case.
LOG_LEVEL = click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="The least severe log lines written (INFO: one line per request).",
)


#: The commands of the other ``cli_*`` modules, by name: each imported only when named, so that a
#: command line imports what it runs and not every command's dependencies.
ELSEWHERE: dict[str, str] = {
    "accounts": "patron.cli_accounts:accounts_group",
    "keys": "patron.cli_accounts:keys_group",
    "queue": "patron.cli_queue:queue_command",
    "errors": "patron.cli_queue:errors_command",
    "segments": "patron.cli_segments:segments_group",
    "webhooks": "patron.cli_webhooks:webhooks_group",
    "import": "patron.cli_transfer:import_command",
    "export": "patron.cli_transfer:export_command",
    "copy": "patron.cli_transfer:copy_command",
    "profiles": "patron.cli_profiles:profiles_group",
    "report": "patron.cli_profiles:report_command",
    "unsubscribe": "patron.cli_profiles:unsubscribe",
}


class _Commands(click.Group):
    """The ``patron`` group: its own commands, and those of :data:`ELSEWHERE` imported when named."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *ELSEWHERE})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in ELSEWHERE:
            return super().get_command(ctx, cmd_name)
        module, name = ELSEWHERE[cmd_name].split(":")
        command: click.Command = getattr(importlib.import_module(module), name)
        return command


@click.group(cls=_Commands)
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

    from patron import metrics
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
