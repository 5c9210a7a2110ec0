"""The store: where every byte Patron acknowledges is kept.

Domain modules write their queries as plain functions of a SQLAlchemy ``Connection`` and hand them to
the store, which decides how they run: on SQLite, writes go through one writer thread that commits the
work of many concurrent callers together (group commit); reads run on their own connections. A
PostgreSQL store implements the same interface, so nothing above this package knows which one it has.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import (
    ARRAY,
    JSON,
    Boolean,
    ColumnElement,
    Connection,
    Dialect,
    Float,
    Select,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from patron.config import Settings
from patron.errors import Unavailable

T = TypeVar("T")

#: A unit of work: a function that runs inside a transaction and returns a value.
Work = Callable[[Connection], T]


class StoreUnavailable(Unavailable):
    """The store could not commit or read; the caller must not acknowledge anything."""


class ReadTimeout(StoreUnavailable):
    """A read ran past its time budget and was cancelled (or dropped before it ran)."""

    def __init__(self, budget: float) -> None:
        super().__init__(f"the read took longer than its budget of {budget:g} s and was cancelled")
        self.budget = budget


#: How a worker waits for work: ``wait(timeout)`` returns once woken or after ``timeout`` seconds, and
#: False when whatever wakes the worker has gone for good.
Wait = Callable[[float], bool]


class Store(Protocol):
    """What the rest of Patron may ask of a store."""

    url: str
    #: Whether several workers may apply the queue at once, each holding a claim on one account
    #: (PostgreSQL); on SQLite one worker applies everything.
    parallel_workers: bool

    def migrate(self) -> list[str]:
        """Bring the schema up to date (SQLite does it on :meth:`start`; PostgreSQL only here); returns
        what else it did, for the operator (SQLite: a file switched to incremental auto-vacuum)."""

    def start(self) -> None:
        """Open connections (and start the writer). Idempotent."""

    def close(self) -> None:
        """Finish queued writes and close every connection."""

    def purge(self) -> None:
        """Make what was deleted unrecoverable from the store's own files, where the store can."""

    def reclaim(self, pages: int) -> int:
        """Give up to ``pages`` free pages of the database file back to the file system, in one short
        write; returns how many it gave (SQLite's incremental vacuum; on PostgreSQL none: autovacuum
        makes deleted rows' space reusable)."""

    def backup(self, target: Path) -> None:
        """Write a consistent copy of the whole database to the new file ``target`` while every other
        process goes on writing (SQLite's online backup); :class:`patron.errors.Invalid` where the
        database has tools of its own for it (PostgreSQL: ``pg_dump``). Needs no :meth:`start`."""

    def waiter(self, stop: threading.Event) -> Wait:
        """How a worker sleeps until there is work: woken by :func:`notify_workers` where the store
        can carry it (PostgreSQL's ``LISTEN``), else after the timeout; within a second of ``stop``."""

    async def write(self, work: Work[T]) -> T:
        """Run ``work`` in a write transaction; return only after it is durably committed."""

    def write_blocking(self, work: Work[T]) -> T:
        """:meth:`write` for threads that are not on an event loop (the CLI, the worker)."""

    async def read(self, work: Work[T], budget: float | None = None) -> T:
        """Run ``work`` on a read-only connection, off the event loop, within the store's read budget
        (or ``budget`` seconds; :class:`ReadTimeout` past it), queued fairly with the reads of other
        owners (:data:`patron.store.fair.owner`)."""

    def read_blocking(self, work: Work[T]) -> T:
        """:meth:`read` for threads that are not on an event loop."""


#: How many values one :func:`among` is given at a time (it has no limit: this bounds what one query
#: reads, and one transaction of ``patron profiles rebuild`` writes).
CHUNK = 2000


def among(conn: Connection, column: ColumnElement[Any], values: Collection[Any]) -> ColumnElement[bool]:
    """``column IN values`` with the values as one parameter, of any length: a JSON array read by
    ``json_each`` on SQLite, an array on PostgreSQL. The statement's text does not depend on how many
    values there are, so it is compiled once; an ``IN`` of hundreds of parameters is rendered again
    on every execution, which costs more than the query on the worker's hot paths."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    listed = func.json_each(bindparam(None, json.dumps(list(values)))).table_valued("value")
    return column.in_(select(listed.c.value))


def insert_rows(
    conn: Connection,
    table: Table,
    fixed: Mapping[str, Any],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Insert ``rows`` (values of ``columns``, in that order) into ``table``, each with the values
    ``fixed``, by the driver's ``executemany``. The fixed values are converted for the database once;
    those of ``columns`` must need no conversion (text, numbers: :class:`TypeError` otherwise), so no
    row is looked at here. For the worker's hottest inserts (a segment entry, a webhook event), where
    SQLAlchemy's conversion of each row's parameters costs as much as the insert itself."""
    if not rows:
        return
    statement, convert = _insert_text(conn.dialect, table, tuple(fixed), tuple(columns))
    head = tuple(
        to_db(fixed[name]) if to_db else fixed[name] for name, to_db in zip(fixed, convert, strict=True)
    )
    conn.exec_driver_sql(statement, [head + tuple(row) for row in rows])


@functools.lru_cache(maxsize=64)
def _insert_text(
    dialect: Dialect, table: Table, fixed: tuple[str, ...], columns: tuple[str, ...]
) -> tuple[str, list[Callable[[Any], Any] | None]]:
    """The text of :func:`insert_rows`' statement in ``dialect``, and the converter of each fixed value."""

    def converter(name: str) -> Callable[[Any], Any] | None:
        return table.c[name].type.dialect_impl(dialect).bind_processor(dialect)

    for name in columns:
        if converter(name) is not None:
            raise TypeError(f"{table.name}.{name} needs converting: give it among the fixed values")
    convert = [converter(name) for name in fixed]
    quote = dialect.identifier_preparer.quote
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}[dialect.paramstyle]
    names = ", ".join(quote(name) for name in fixed + columns)
    marks = ", ".join([mark] * (len(fixed) + len(columns)))
    return f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})", convert  # noqa: S608


def each_of(
    conn: Connection, outer: Table, inner: Select[Any], table: Table, *, lock: bool = False
) -> Select[Any]:
    """``inner`` (a select of columns of an alias of ``table``, correlated to ``outer``, with its own
    ORDER BY and LIMIT) run for each row of ``outer``, as one select of its columns from ``outer``:
    each row of ``outer`` reads only its own few through an index, whatever else ``table`` holds.
    PostgreSQL joins it LATERAL (``lock``: the rows locked, skipping those another transaction
    holds); SQLite, which has no LATERAL, reads ``table``'s rows whose id ``inner`` finds, ``outer``
    first (a left join, which SQLite never reorders: an ``outer`` row with none gives a row of NULLs).
    """
    if conn.dialect.name == "postgresql":
        each = (inner.with_for_update(skip_locked=True) if lock else inner).lateral()
        return select(*each.c).select_from(outer).join(each, true())
    [first, *_] = inner.selected_columns
    ids = inner.with_only_columns(first).correlate(outer).scalar_subquery()
    columns = [table.c[column.name] for column in inner.selected_columns]
    return select(*columns).select_from(outer).outerjoin(table, table.c.id.in_(ids))


def id_window(table: Table, account_id: int, after: int, upto: int) -> ColumnElement[bool]:
    """The account's rows of ``table`` whose ids are in ``(after, upto]``, read by the range of the
    primary key: at most ``upto - after`` rows, however many the account holds. The account is
    compared as ``account_id + 0``, which no index serves, so that the database does not read all
    the account's rows through an index of the account instead."""
    return (table.c.id > after) & (table.c.id <= upto) & ((table.c.account_id + 0) == account_id)


def chunks(items: Sequence[T], size: int = CHUNK) -> list[list[T]]:
    """``items`` in lists of at most ``size``, for :func:`among`."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def among_keys(
    conn: Connection, columns: Sequence[ColumnElement[Any]], keys: Collection[tuple[str, ...]]
) -> list[ColumnElement[bool]]:
    """Conditions that together find the rows whose ``columns`` hold one of ``keys`` (a value for each
    column): for each value of the leading columns (a contact's collection), those columns equal to
    it and the last :func:`among` its keys' last values, :data:`CHUNK` at a time. With the leading
    columns given, an index of them all finds the rows; with the last column alone, it serves only
    as far as the account."""
    *scope, last = columns
    lasts: dict[tuple[str, ...], list[str]] = {}
    for key in sorted(keys):
        lasts.setdefault(key[:-1], []).append(key[-1])
    return [
        and_(
            *(column == value for column, value in zip(scope, leading, strict=True)), among(conn, last, part)
        )
        for leading, values in lasts.items()
        for part in chunks(values)
    ]


#: The JSON types :func:`json_field` reads, and what each is to SQLite's ``json_type`` and
#: PostgreSQL's ``json_typeof``.
_JSON_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...], Any]] = {
    "text": (("text",), ("string",), Text()),
    "number": (("integer", "real"), ("number",), Float()),
    "bool": (("true", "false"), ("boolean",), Boolean()),
}


def json_field(
    dialect: Connection | Dialect, column: ColumnElement[Any], path: str, kind: str
) -> ColumnElement[Any]:
    """The value at ``path`` (keys joined by dots, each of letters, digits, ``_`` or ``-``) of the JSON
    text in ``column``, as SQL of the type ``kind`` names (``text``, ``number`` or ``bool``), and NULL
    where it is missing or of another JSON type: ``json_extract`` on SQLite, ``json_extract_path_text``
    on PostgreSQL."""
    name = dialect.dialect.name if isinstance(dialect, Connection) else dialect.name
    sqlite_types, postgres_types, sql_type = _JSON_TYPES[kind]
    keys = path.split(".")
    if name == "postgresql":
        document = cast(column, JSON)
        text = func.json_extract_path_text(document, *keys)
        of_type = func.json_typeof(func.json_extract_path(document, *keys)).in_(postgres_types)
        value: ColumnElement[Any] = (
            text if kind == "text" else cast(text, Float) if kind == "number" else text == "true"
        )
        return case((of_type, value), else_=None)
    where = "$." + ".".join(f'"{key}"' for key in keys)
    of_type = func.json_type(column, where).in_(sqlite_types)
    extracted = func.json_extract(column, where)
    value = extracted if kind != "bool" else extracted == 1
    return type_coerce(case((of_type, value), else_=None), sql_type)


def json_elements(dialect: Connection | Dialect, column: ColumnElement[Any], key: str) -> Any:
    """The elements of the JSON array under ``key`` in the JSON text in ``column`` (none where it is
    missing or not an array), as a table of one column ``value`` that :func:`json_field` reads:
    ``json_each`` on SQLite, ``json_array_elements`` on PostgreSQL."""
    name = dialect.dialect.name if isinstance(dialect, Connection) else dialect.name
    if name == "postgresql":
        found = func.json_extract_path(cast(column, JSON), key)
        array = case((func.json_typeof(found) == "array", found), else_=cast("[]", JSON))
        return func.json_array_elements(array).table_valued("value")
    return func.json_each(column, f'$."{key}"').table_valued("value")


def upsert(conn: Connection, table: Table) -> postgresql_dialect.Insert | sqlite_dialect.Insert:
    """An ``INSERT`` into ``table`` that may say what a conflict on a unique key does
    (``on_conflict_do_nothing``, ``on_conflict_do_update``), in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql_dialect.insert(table)
    return sqlite_dialect.insert(table)


#: The PostgreSQL channel on which a write that queues work tells idle workers.
WORKERS_CHANNEL = "patron_queue"


def notify_workers(conn: Connection) -> None:
    """Wake the waiting workers (:meth:`Store.waiter`) when this transaction commits, where the store
    carries it (PostgreSQL's ``NOTIFY``; SQLite's worker is woken by its server's pipe instead)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"NOTIFY {WORKERS_CHANNEL}")


def database_size(conn: Connection) -> int:
    """The database's size in bytes: its pages on SQLite (the WAL aside), its files on PostgreSQL."""
    if conn.dialect.name == "postgresql":
        return int(conn.execute(select(func.pg_database_size(func.current_database()))).scalar_one())
    pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
    page_size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
    return int(pages) * int(page_size)


#: The first key of the PostgreSQL advisory locks by which a worker claims an account.
ACCOUNT_LOCKS = 0x7061  # "pa"


def lock_account(conn: Connection, account_id: int, *, wait: bool = True) -> bool:
    """On PostgreSQL, hold the account's claim (the one workers take to apply its queue) until the
    transaction ends; False if ``wait`` is off and another transaction holds it. On SQLite every write
    transaction is alone already."""
    if conn.dialect.name != "postgresql":
        return True
    lock = func.pg_advisory_xact_lock if wait else func.pg_try_advisory_xact_lock
    return conn.execute(select(lock(ACCOUNT_LOCKS, account_id))).scalar() is not False


#: The first key of the PostgreSQL advisory locks that keep an account's profiles from being merged or
#: anonymised while its webhook events are fanned out.
FAN_OUT_LOCKS = 0x7066  # "pf"


def lock_fan_out(conn: Connection, account_id: int, *, shared: bool) -> None:
    """On PostgreSQL, wait for and hold the account's fan-out lock until the transaction ends:
    ``shared`` by a deliverer fanning out the account's webhook events (several may), alone by a
    transaction that merges or anonymises its profiles (what those events are about). A round that
    does neither never waits for a deliverer. On SQLite every write transaction is alone already."""
    if conn.dialect.name == "postgresql":
        lock = func.pg_advisory_xact_lock_shared if shared else func.pg_advisory_xact_lock
        conn.execute(select(lock(FAN_OUT_LOCKS, account_id)))


#: The first key of the PostgreSQL advisory locks of tasks that one worker at a time runs (the second
#: names the task: :data:`PRUNING`).
TASK_LOCKS = 0x7074  # "pt"
PRUNING = 1


def lock_task(conn: Connection, task: int) -> bool:
    """On PostgreSQL, hold the lock of ``task`` until the transaction ends, or False at once if
    another transaction holds it. On SQLite every write transaction is alone already."""
    if conn.dialect.name != "postgresql":
        return True
    return conn.execute(select(func.pg_try_advisory_xact_lock(TASK_LOCKS, task))).scalar() is not False


def open_store(settings: Settings) -> Store:
    """The store for ``settings``' database URL (not yet started)."""
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        from patron.store.sqlite import SQLiteStore

        # the database holds every account's secrets: the directory and the file are the owner's alone
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        settings.data_dir.chmod(0o700)
        return SQLiteStore(url, read_budget=settings.read_budget)
    if url.startswith(("postgresql:", "postgres:", "postgresql+psycopg:")):
        from patron.store.postgres import PostgresStore

        return PostgresStore(url, read_budget=settings.read_budget)
    scheme = url.split(":", 1)[0]
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:///PATH or postgresql://...")
