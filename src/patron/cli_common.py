"""What the ``patron`` commands share: the store they open (refusing a data directory without a
database), a unit of work run on it, the options every account command takes, and tables and JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Column
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from patron import errors
from patron.config import Settings
from patron.store import Store, StoreUnavailable, open_store

T = TypeVar("T")
#: Tables fit a terminal's width (folding what they must, never a hash or a key id); to a pipe or a
#: file each row is one whole line, for grep and the like.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 1000)


def missing_database(settings: Settings) -> Path | None:
    """The SQLite file the settings name, if it does not exist (``patron migrate`` creates it)."""
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        return None
    try:
        database = make_url(url).database
    except ArgumentError:
        return None
    if not database or database == ":memory:" or Path(database).exists():
        return None
    return Path(database)


@contextmanager
def opened(settings: Settings) -> Iterator[Store]:
    """The store, started; a data directory without a database is refused (with the command that
    makes one), and a database that cannot be opened is a one-line error."""
    missing = missing_database(settings)
    if missing is not None:
        raise click.ClickException(
            f"no database at {missing}: create it with 'patron migrate'"
            " (given the same --data-dir or --database-url), then run this command again"
        )
    with one_line_errors():
        store = open_store(settings)
        store.start()
    try:
        yield store
    finally:
        store.close()


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A database that cannot be opened (or migrated) is a one-line error, not a traceback."""
    try:
        yield
    except (ValueError, OSError, SQLAlchemyError, StoreUnavailable) as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise click.ClickException(f"cannot open the database: {detail}") from exc


def run(ctx: click.Context, work: Callable[[Connection], T], *, write: bool = True) -> T:
    """Run one unit of work against the store, turning domain errors into a clean CLI error."""
    settings: Settings = ctx.obj
    with opened(settings) as store:
        try:
            return store.write_blocking(work) if write else store.read_blocking(work)
        except errors.PatronError as exc:
            raise click.ClickException(str(exc)) from exc


def account_option(
    required: bool = True, help: str = "The account's hash."
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--account HASH``: the account a command acts on."""
    return click.option("--account", "account_hash", metavar="HASH", required=required, help=help)


#: ``--json``: a listing (or a report) as JSON rather than a table.
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON rather than a table.")


def hash_column(header: str) -> Column:
    """A table's column of account hashes or key ids (one a line): never cut or folded, however narrow
    the terminal."""
    return Column(header, no_wrap=True, min_width=16, overflow="ignore")


def time_column(header: str) -> Column:
    """A table's column of times to the minute (:func:`minute`): on a narrow terminal the time folds
    under the date, and neither is cut."""
    return Column(header, min_width=10)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def minute(at: datetime | None, none: str = "") -> str:
    """A time as tables show it, to the minute (UTC)."""
    return f"{at:%Y-%m-%d %H:%M}" if at is not None else none


def iso(at: datetime | None) -> str | None:
    """A time as JSON shows it."""
    return at.isoformat() if at is not None else None


class Moment(click.ParamType[datetime]):
    """A moment in ISO 8601 (a day means its start; without an offset, UTC), as a UTC datetime."""

    name = "WHEN"
    #: What a value that does not convert is said to be.
    expected = "not an ISO 8601 date or time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        return self.moment(str(value).strip(), param, ctx)

    def moment(self, text: str, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{text!r} is {self.expected}", param, ctx)
        return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC)
