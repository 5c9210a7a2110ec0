"""``patron import``, ``patron export`` and ``patron copy``: moving records through the API of a
Patron (or any Ometria-compatible server), with a progress bar, a checkpoint and a rejects file."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from patron.client import AsyncClient, ClientError
from patron.transfer.checkpoint import CheckpointError, fingerprint
from patron.transfer.exporter import COPIED, TYPES, Copy, Export
from patron.transfer.importer import Import, Tally
from patron.transfer.mapping import RECORD_TYPES, Mapping, MappingError
from patron.transfer.sources import open_source

T = TypeVar("T")
err = Console(stderr=True, highlight=False)
RESUME = "run the same command again to resume from the checkpoint"


def _url(prefix: str = "", who: str = "the server") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--url``, ``--key`` and ``--ca`` (with a prefix for ``copy``'s two ends)."""
    dash = f"{prefix}-" if prefix else ""
    env = f"PATRON_{prefix.upper()}_" if prefix else "PATRON_"

    def add(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(
            [
                click.option(
                    f"--{dash}url",
                    required=True,
                    envvar=f"{env}URL",
                    help=f"The API of {who}, e.g. https://localhost:8443 (env {env}URL).",
                ),
                click.option(
                    f"--{dash}key",
                    required=True,
                    envvar=f"{env}KEY",
                    help=f"An API key of the account (env {env}KEY).",
                ),
                click.option(
                    f"--{dash}ca",
                    type=click.Path(dir_okay=False, exists=True, path_type=Path),
                    envvar=f"{env}CA",
                    help=f"The CA of the server's certificate, e.g. patron-data/tls/ca.pem (env {env}CA).",
                ),
            ]
        ):
            command = option(command)
        return command

    return add


def _client(url: str, key: str, ca: Path | None, concurrency: int, rate: float | None) -> AsyncClient:
    return AsyncClient(url, key, verify=str(ca) if ca else True, concurrency=concurrency, push_rate=rate)


concurrency_option = click.option(
    "--concurrency",
    type=click.IntRange(1, 16),
    default=4,
    show_default=True,
    help="Push requests in flight at once (two that write one record never are).",
)
rate_option = click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    help="Push requests per second, for a server that does not announce its limit (Patron does).",
)
restart_option = click.option(
    "--restart", is_flag=True, help="Ignore the checkpoint and start from the beginning."
)


@contextmanager
def _progress(what: str, total: int | None) -> Iterator[Callable[[Tally], None]]:
    columns = [
        TextColumn(f"[bold]{what}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%" if total else ""),
        TextColumn("{task.fields[rate]:>7.0f} records/s"),
        TextColumn("{task.fields[accepted]} accepted  {task.fields[rejected]} rejected"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, transient=False) as progress:
        task: TaskID = progress.add_task(what, total=total, rate=0.0, accepted=0, rejected=0)

        def report(tally: Tally) -> None:
            progress.update(
                task,
                completed=tally.read_bytes if total else None,
                rate=tally.rate,
                accepted=tally.accepted,
                rejected=tally.rejected,
            )

        yield report


def _run(work: Coroutine[Any, Any, T], client: AsyncClient, *more: AsyncClient) -> T:
    """Run ``work`` to its end; a failure that stops it is a one-line error (the checkpoint holds)."""

    async def run() -> T:
        try:
            return await work
        finally:
            for each in (client, *more):
                await each.close()

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        err.print(f"interrupted: {RESUME}")
        raise SystemExit(130) from None
    except ClientError as exc:
        raise click.ClickException(f"{exc}; {RESUME}") from exc


def _summary(tally: Tally, verb: str, client: AsyncClient, rejects: Path | None) -> None:
    """The run's outcome: records accepted and rejected (where the rejects are), this run's pace, and
    how often the server asked it to slow down."""
    line = f"{verb}: {tally.accepted} accepted, {tally.rejected} rejected"
    if tally.rejected and rejects is not None:
        line += f" (each with its line, path and message in {rejects})"
    refused = client.stats.statuses.get(429, 0)
    line += f"; {tally.this_run} this run in {tally.seconds:.1f} s, {tally.rate:.0f} records/s;"
    line += f" {client.stats.requests} requests, {refused} answered 429"
    click.echo(line)


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@_url()
@click.option(
    "--type",
    "record_type",
    type=click.Choice(list(RECORD_TYPES)),
    help="The @type of records without one (and of a CSV's rows).",
)
@click.option(
    "--map",
    "mapping_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A CSV's mapping: which record field each column holds (TOML; docs/import.md).",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["jsonl", "json", "csv"]),
    help="The file's format (default: told by its name and first byte).",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the run's progress is kept (default FILE.import-checkpoint).",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where rejected records go, as JSON Lines (default FILE.rejects.jsonl).",
)
@concurrency_option
@rate_option
@restart_option
def import_command(
    file: Path,
    url: str,
    key: str,
    ca: Path | None,
    record_type: str | None,
    mapping_file: Path | None,
    file_format: str | None,
    checkpoint: Path | None,
    rejects: Path | None,
    concurrency: int,
    rate: float | None,
    restart: bool,
) -> None:
    """Import a file of records (JSON Lines, a JSON array, or CSV with --map) through the push API.

    Keeps the account's push rate, writes rejected records to the rejects file, and resumes an
    interrupted run from its checkpoint without sending anything answered again.
    """
    rejects = rejects or file.with_name(file.name + ".rejects.jsonl")
    try:
        mapping = Mapping.load(mapping_file, record_type) if mapping_file else None
        source = open_source(file, file_format, record_type, mapping)
        client = _client(url, key, ca, concurrency, rate)
        checkpoint = checkpoint or file.with_name(file.name + ".import-checkpoint")
        run = Import(source, client, key, checkpoint, rejects, restart)
    except (MappingError, CheckpointError, OSError) as exc:
        raise click.UsageError(str(exc)) from exc
    if run.state.finished:
        click.echo(f"{file} was imported already ({run.state.accepted} accepted); --restart imports it again")
        return
    if run.resumed:
        click.echo(
            f"resuming at line {run.state.line} ({run.state.accepted + run.state.rejected} records answered)"
        )
    with _progress(f"importing {file.name}", run.tally.total_bytes) as report:
        tally = _run(run.run(report), client)
    _summary(tally, "imported", client, rejects)


@click.command("export")
@_url()
@click.option("--type", "kind", type=click.Choice(list(TYPES)), required=True, help="What to export.")
@click.option("--since", help="Only what changed at or after this time (ISO 8601; a day for profiles).")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="JSON Lines (every field), or CSV (with a --map file to import it again).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file written (default TYPE.jsonl or TYPE.csv).",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the run's progress is kept (default OUTPUT.export-checkpoint).",
)
@restart_option
def export_command(
    url: str,
    key: str,
    ca: Path | None,
    kind: str,
    since: str | None,
    file_format: str,
    output: Path | None,
    checkpoint: Path | None,
    restart: bool,
) -> None:
    """Export an account's contacts, orders, products, custom events or profiles, page by page."""
    output = output or Path(f"{kind}.{file_format}")
    client = _client(url, key, ca, 1, None)
    try:
        run = Export(
            client,
            url,
            key,
            kind,
            output,
            file_format,
            since,
            checkpoint or output.with_name(output.name + ".export-checkpoint"),
            restart,
        )
    except (CheckpointError, OSError) as exc:
        raise click.UsageError(str(exc)) from exc
    if run.table is not None and kind != "profiles":
        mapping = output.with_name(output.stem + ".map.toml")
        mapping.write_text(run.table.mapping(TYPES[kind][0]))
        click.echo(f"the mapping to import {output} again: {mapping}")
    with _progress(f"exporting {kind}", None) as report:
        tally = _run(run.run(report), client)
    _summary(tally, f"exported to {output}", client, None)


@click.command("copy")
@_url("from", "the account copied")
@_url("to", "the account copied into")
@click.option(
    "--type",
    "kinds",
    type=click.Choice(COPIED),
    multiple=True,
    help="What to copy (repeat; default all, products first).",
)
@click.option("--since", help="Only what changed at or after this time (ISO 8601).")
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("copy.checkpoint"),
    show_default=True,
    help="Where the run's progress is kept.",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("copy.rejects.jsonl"),
    show_default=True,
    help="Where records the target rejected go, as JSON Lines.",
)
@concurrency_option
@rate_option
@restart_option
def copy_command(
    from_url: str,
    from_key: str,
    from_ca: Path | None,
    to_url: str,
    to_key: str,
    to_ca: Path | None,
    kinds: tuple[str, ...],
    since: str | None,
    checkpoint: Path,
    rejects: Path,
    concurrency: int,
    rate: float | None,
    restart: bool,
) -> None:
    """Copy one account's records into another: staging into live, or Patron into Ometria."""
    kinds = tuple(k for k in COPIED if k in kinds) if kinds else COPIED
    source = _client(from_url, from_key, from_ca, 1, None)
    target = _client(to_url, to_key, to_ca, concurrency, rate)
    run_id = fingerprint(from_url, from_key, to_url, to_key, *kinds, since or "")
    try:
        run = Copy(source, target, run_id, kinds, since, checkpoint, rejects, restart)
    except (CheckpointError, OSError) as exc:
        raise click.UsageError(str(exc)) from exc
    with _progress("copying", None) as report:
        tally = _run(run.run(report), source, target)
    _summary(tally, "copied", target, rejects)
