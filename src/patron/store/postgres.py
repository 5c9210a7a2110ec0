"""The scaled-out store: PostgreSQL through SQLAlchemy and psycopg 3.

Each unit of work runs in its own transaction on a pooled connection, in a thread; PostgreSQL groups
concurrent commits itself. Migrations are never applied implicitly here: several processes must not
race to migrate, so ``patron migrate`` is an explicit step, and a store on an outdated schema refuses
to start.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import TypeVar

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from patron.errors import Invalid
from patron.store import WORKERS_CHANNEL, StoreUnavailable, Wait, Work
from patron.store.fair import Deadline, FairPool, owner
from patron.store.migrate import current_revision, head_revision, upgrade

T = TypeVar("T")
THREADS = 8


def driver_url(url: str) -> str:
    """``postgresql://...`` with the psycopg 3 driver named, as SQLAlchemy wants it."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


class PostgresStore:
    """A :class:`patron.store.Store` on one PostgreSQL database."""

    parallel_workers = True

    def __init__(self, url: str, *, threads: int = THREADS, read_budget: float | None = None) -> None:
        self.url = url
        self._threads = threads
        self.read_budget = read_budget
        self._engine: Engine | None = None
        self._pool: FairPool | None = None
        self._lock = threading.Lock()

    def _connect(self) -> Engine:
        return create_engine(
            driver_url(self.url),
            pool_size=self._threads,
            max_overflow=2,
            pool_pre_ping=True,
            hide_parameters=True,  # errors (and so logs) never quote the values: they are people's data
            # Every statement planned with its values: a prepared statement's generic plan cannot see
            # how few rows ``value = ANY(array)`` (store.among) picks, and scans the account instead.
            connect_args={"prepare_threshold": None},
        )

    def migrate(self) -> list[str]:
        engine = self._engine or self._connect()
        try:
            with engine.begin() as conn:
                upgrade(conn)
        finally:
            if engine is not self._engine:
                engine.dispose()
        return []

    def start(self) -> None:
        with self._lock:
            if self._engine is not None:
                return
            engine = self._connect()
            with engine.connect() as conn:
                found = current_revision(conn)
            if found != head_revision():
                engine.dispose()
                raise StoreUnavailable(f"the database is at revision {found}; run `patron migrate` first")
            self._engine = engine
            self._pool = FairPool(self._threads, "patron-db")

    def backup(self, target: Path) -> None:
        """PostgreSQL's own tools do it, consistently while Patron runs, and restore it."""
        raise Invalid(
            "patron backup is for SQLite; on PostgreSQL use pg_dump --format=custom "
            f"--file {target} DATABASE_URL (and pg_restore to restore it; docs/deploy.md)"
        )

    def purge(self) -> None:
        """Nothing: deleted rows leave PostgreSQL's files when autovacuum reclaims them (run
        ``VACUUM`` to hasten it; docs/operations.md, "GDPR")."""

    def reclaim(self, pages: int) -> int:
        """None: autovacuum makes the space of deleted rows reusable within their tables."""
        return 0

    def close(self) -> None:
        with self._lock:
            engine, self._engine = self._engine, None
            pool, self._pool = self._pool, None
            if engine is None or pool is None:
                return
            pool.shutdown()
            engine.dispose()

    def _run(self, work: Work[T], *, write: bool, deadline: Deadline | None = None) -> T:
        if self._engine is None:
            raise StoreUnavailable("the store is not running")
        try:
            if write:
                with self._engine.begin() as conn:
                    return work(conn)
            with self._engine.connect() as conn:
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                left = None if deadline is None else deadline.left()
                if left is not None:
                    # each statement may run for what is left of the budget when the read starts
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(left * 1000))}")
                return work(conn)
        except DBAPIError as exc:
            if not isinstance(exc, OperationalError | InterfaceError):
                raise  # the data's fault (a constraint, a value), not the database's: the caller's to handle
            if deadline is not None and isinstance(exc.orig, psycopg.errors.QueryCanceled):
                raise deadline.expired() from exc
            raise StoreUnavailable(
                f"the database could not {'commit' if write else 'be read'}: {exc}"
            ) from exc

    def waiter(self, stop: threading.Event) -> Wait:
        """A worker's wait: returns once a write has notified the workers' channel, after the
        timeout, or (within a second) once ``stop`` is set."""
        conn = psycopg.connect(
            make_url(self.url).set(drivername="postgresql").render_as_string(False), autocommit=True
        )
        conn.execute(f"LISTEN {WORKERS_CHANNEL}")

        def wait(timeout: float) -> bool:
            deadline = time.monotonic() + timeout
            while not stop.is_set():
                left = deadline - time.monotonic()
                if any(True for _ in conn.notifies(timeout=max(0.0, min(left, 1.0)), stop_after=1)):
                    for _ in conn.notifies(timeout=0):  # take the others that came meanwhile
                        pass
                    return True
                if left <= 1.0:
                    return True
            return True

        return wait

    def write_blocking(self, work: Work[T]) -> T:
        return self._run(work, write=True)

    def read_blocking(self, work: Work[T]) -> T:
        return self._run(work, write=False)

    async def write(self, work: Work[T]) -> T:
        return await self._in_pool(work, write=True)

    async def read(self, work: Work[T], budget: float | None = None) -> T:
        return await self._in_pool(work, write=False, budget=budget)

    async def _in_pool(self, work: Work[T], *, write: bool, budget: float | None = None) -> T:
        if self._pool is None:
            raise StoreUnavailable("the store is not running")
        deadline = Deadline(None if write else budget or self.read_budget)
        job = self._pool.submit(
            lambda: self._run(work, write=write, deadline=deadline), deadline=deadline, who=owner.get()
        )
        return await asyncio.wrap_future(job)
