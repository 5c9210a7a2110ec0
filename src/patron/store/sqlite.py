"""The embedded store: SQLite in WAL mode with one writer thread that group-commits.

Every write from every request is queued to a single writer thread. The thread takes whatever is
queued, runs each unit of work inside its own SAVEPOINT (so one failing caller does not undo the
others), commits them all with one ``fsync`` (``synchronous=FULL``), and only then wakes the callers.
A caller therefore resumes only once its own data is on disk, and a thousand concurrent requests cost
a handful of fsyncs instead of a thousand. Readers use their own connections and see committed data.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from patron.errors import Invalid
from patron.store import StoreUnavailable, Wait, Work
from patron.store.fair import Deadline, FairPool, owner
from patron.store.migrate import is_current, upgrade

T = TypeVar("T")
log = logging.getLogger("patron.store")

_STOP = object()
#: The most units of work committed in one transaction.
MAX_GROUP = 512
READERS = 4
CHECKPOINT_SECONDS = 0.5
#: ``PRAGMA auto_vacuum``'s value for incremental: free pages stay in the file until
#: ``incremental_vacuum`` gives them back (:meth:`SQLiteStore.reclaim`, after pruning).
INCREMENTAL = 2
#: SQLite virtual-machine steps between two looks at a read's deadline.
PROGRESS_STEPS = 1000


def _engine(url: str, *, begin: str, pool_size: int, query_only: bool, autocheckpoint: int = 1000) -> Engine:
    engine = create_engine(
        url,
        hide_parameters=True,  # errors (and so logs) never quote the values: they are people's data
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"check_same_thread": False, "timeout": 30},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that BEGIN and SAVEPOINT are ours.
        dbapi_connection.isolation_level = None
        if not query_only:  # takes effect in a new database only (before its first table): migrate()
            dbapi_connection.execute("PRAGMA auto_vacuum=INCREMENTAL")
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            "busy_timeout=30000",
            "temp_store=MEMORY",
            f"query_only={int(query_only)}",
            # what is deleted or rewritten is overwritten with zeros, not left in free pages (GDPR)
            "secure_delete=ON",
            f"wal_autocheckpoint={autocheckpoint}",
        ):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)

    return engine


def _owner_only(path: str) -> None:
    """Create the database file readable by its owner alone (it holds every account's link keys);
    SQLite gives its WAL and shared-memory files the same mode."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    Path(path).chmod(0o600)


class WriterLock:
    """An exclusive lock, between processes, around every write transaction on one database.

    SQLite lets one writer in at a time and makes the others poll with growing sleeps (up to 100 ms),
    which would show as latency whenever ``patron serve`` and a ``patron worker`` process both write.
    Queueing on an ``flock`` instead wakes the next writer the moment the lock is released.
    """

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


class SQLiteStore:
    """A :class:`patron.store.Store` on one SQLite file."""

    parallel_workers = False

    def __init__(self, url: str, *, readers: int = READERS, read_budget: float | None = None) -> None:
        self.url = url
        self._readers = readers
        self.read_budget = read_budget
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._write_engine: Engine | None = None
        self._read_engine: Engine | None = None
        self._read_pool: FairPool | None = None
        #: Transactions committed, and units of work committed in them (group commit: fewer of the first).
        self.commits = 0
        self.committed_writes = 0
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()

    # lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            _owner_only(str(make_url(self.url).database))
            # The writer never checkpoints inside a commit (which would stall every request of its
            # group); the checkpointer thread copies the WAL back into the database instead.
            self._write_engine = _engine(
                self.url, begin="BEGIN IMMEDIATE", pool_size=1, query_only=False, autocheckpoint=0
            )
            self._read_engine = _engine(self.url, begin="BEGIN", pool_size=self._readers, query_only=True)
            self._writers = WriterLock(f"{make_url(self.url).database}.writer-lock")
            self._migrate()
            self._read_pool = FairPool(self._readers, "patron-read")
            self._thread = threading.Thread(target=self._write_loop, name="patron-writer", daemon=True)
            self._thread.start()
            self._stop_checkpoints.clear()
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="patron-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def migrate(self) -> list[str]:
        """Migrations run on every start on SQLite; this starts and stops the store if it is not
        running, then switches a database made before incremental auto-vacuum to it (one ``VACUUM``,
        which rewrites the file: it needs free disk of the database's size, and holds up writers)."""
        if self._thread is not None:
            return []
        self.start()
        self.close()
        path = str(make_url(self.url).database)
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            if db.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL:
                return []
            writers = WriterLock(f"{path}.writer-lock")
            try:
                with writers:
                    db.execute("PRAGMA secure_delete=ON")
                    db.execute(f"PRAGMA auto_vacuum={INCREMENTAL}")
                    db.execute("VACUUM")
            finally:
                writers.close()
        finally:
            db.close()
        return ["the database file was switched to incremental auto-vacuum (a one-time VACUUM)"]

    def _migrate(self) -> None:
        assert self._write_engine is not None
        with self._writers, self._write_engine.connect() as conn:
            if not is_current(conn):
                upgrade(conn)
            conn.commit()

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._queue.put(_STOP)
            thread.join()
            self._stop_checkpoints.set()
            if self._checkpointer is not None:
                self._checkpointer.join()
            assert self._read_pool is not None and self._read_engine and self._write_engine
            self._read_pool.shutdown()
            self._read_engine.dispose()
            self._write_engine.dispose()
            self._writers.close()

    # writes --------------------------------------------------------------------------------------
    def submit(self, work: Work[T]) -> Future[T]:
        if self._thread is None:
            raise StoreUnavailable("the store is not running")
        future: Future[T] = Future()
        self._queue.put((work, future))
        return future

    async def write(self, work: Work[T]) -> T:
        return await asyncio.wrap_future(self.submit(work))

    def write_blocking(self, work: Work[T]) -> T:
        return self.submit(work).result()

    def _write_loop(self) -> None:
        assert self._write_engine is not None
        conn = self._write_engine.connect()
        stopping = False
        while not stopping:
            group = [self._queue.get()]
            while len(group) < MAX_GROUP:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if any(item is _STOP for item in group):
                stopping = True
                group = [item for item in group if item is not _STOP]
            if group:
                conn = self._commit_group(conn, group)
        conn.close()

    def _commit_group(self, conn: Connection, group: list[tuple[Work[Any], Future[Any]]]) -> Connection:
        outcomes: list[tuple[Future[Any], bool, Any]] = []
        try:
            with self._writers, conn.begin():
                for work, future in group:
                    if not future.set_running_or_notify_cancel():
                        continue
                    try:
                        with conn.begin_nested():
                            outcomes.append((future, True, work(conn)))
                    except (OperationalError, InterfaceError, sqlite3.OperationalError):
                        raise  # the database's fault: the whole group fails, below
                    except Exception as exc:  # the unit's own fault: it alone fails
                        outcomes.append((future, False, exc))
        except Exception as exc:
            # The commit (or the database itself) failed: nothing in this group is durable.
            log.error("group commit failed", exc_info=exc)
            failure = StoreUnavailable(f"the database could not commit: {exc}")
            for _, future in group:
                if future.running():
                    future.set_exception(failure)
            conn.invalidate()
            conn.close()
            assert self._write_engine is not None
            return self._write_engine.connect()
        self.commits += 1
        self.committed_writes += sum(1 for _, ok, _ in outcomes if ok)
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        return conn

    def waiter(self, stop: threading.Event) -> Wait:
        """A worker's wait when nothing wakes it (``patron serve`` wakes its own worker through a
        pipe instead): the timeout, or ``stop``."""
        return lambda timeout: not stop.wait(timeout)

    def purge(self) -> None:
        """Checkpoint the WAL into the database and truncate it, so that the page images it holds of
        data deleted since (with ``secure_delete``, zeroed in the database) are gone from the files
        too. Waits up to 30 s for readers that still use the WAL."""
        db = sqlite3.connect(str(make_url(self.url).database), timeout=30, isolation_level=None)
        try:
            deadline = time.monotonic() + 30
            while True:
                busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            db.close()
        if busy:
            raise StoreUnavailable("the WAL could not be truncated: readers kept it busy for 30 s")

    def reclaim(self, pages: int) -> int:
        """Move up to ``pages`` free pages to the end of the file and cut them off, in one write of
        the writer thread (the file shrinks at the next checkpoint); returns how many. Each step of
        ``PRAGMA incremental_vacuum`` frees one page, and the driver steps a statement that returns
        no rows once: hence one statement a page."""

        def work(conn: Connection) -> int:
            free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
            for _ in range(min(free, pages)):
                conn.exec_driver_sql("PRAGMA incremental_vacuum")
            return free - int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())

        return self.write_blocking(work)

    def backup(self, target: Path) -> None:
        """SQLite's online backup, in one step: one read transaction, so the copy is the database as
        of one commit, and writers (WAL) go on meanwhile; a step at a time would start again after
        every commit of another connection, and never end under steady pushes. The copy is checked
        (``quick_check``), written to the disk, and only then given its name, readable by its owner
        alone. It holds nothing of the WAL: it is a database of its own."""
        source = Path(str(make_url(self.url).database))
        if not source.is_file():
            raise Invalid(f"there is no database at {source}")
        if target.exists():
            raise Invalid(f"{target} exists: back up to a new file")
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        _owner_only(str(partial))
        src = sqlite3.connect(str(source), timeout=30, isolation_level=None)
        dst = sqlite3.connect(str(partial), isolation_level=None)
        try:
            src.execute("PRAGMA query_only=1")
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one file, whatever mode the source runs in
            found = dst.execute("PRAGMA quick_check").fetchone()[0]
            if found != "ok":
                raise StoreUnavailable(f"the copy does not check out: {found}")
        except BaseException:
            dst.close()
            partial.unlink(missing_ok=True)
            raise
        finally:
            src.close()
            dst.close()
        fd = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        partial.replace(target)

    def _checkpoint_loop(self) -> None:
        """Copy committed WAL pages into the database file every :data:`CHECKPOINT_SECONDS`, beside
        the writer rather than inside its commits; truncate the WAL on the way out."""
        db = sqlite3.connect(str(make_url(self.url).database), timeout=30, isolation_level=None)
        try:
            while True:
                stopping = self._stop_checkpoints.wait(CHECKPOINT_SECONDS)
                try:
                    db.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if stopping else 'PASSIVE'})").fetchall()
                except sqlite3.Error:
                    log.warning("checkpoint failed; the next one will retry", exc_info=True)
                if stopping:
                    return
        finally:
            db.close()

    # reads ---------------------------------------------------------------------------------------
    def read_blocking(self, work: Work[T], deadline: Deadline | None = None) -> T:
        if self._read_engine is None:
            raise StoreUnavailable("the store is not running")
        try:
            with self._read_engine.connect() as conn:
                if deadline is None or deadline.at is None:
                    return work(conn)
                # SQLite calls the handler every PROGRESS_STEPS steps; a true answer interrupts the query
                raw: Any = conn.connection.dbapi_connection
                raw.set_progress_handler(deadline.passed, PROGRESS_STEPS)
                try:
                    return work(conn)
                finally:
                    raw.set_progress_handler(None, 0)
        except DBAPIError as exc:
            if not isinstance(exc, OperationalError | InterfaceError):
                raise  # the data's fault (a constraint, a value), not the database's: the caller's to handle
            if deadline is not None and deadline.passed():
                raise deadline.expired() from exc
            raise StoreUnavailable(f"the database could not be read: {exc}") from exc

    async def read(self, work: Work[T], budget: float | None = None) -> T:
        if self._read_pool is None:
            raise StoreUnavailable("the store is not running")
        deadline = Deadline(budget or self.read_budget)
        job = self._read_pool.submit(
            lambda: self.read_blocking(work, deadline), deadline=deadline, who=owner.get()
        )
        return await asyncio.wrap_future(job)
