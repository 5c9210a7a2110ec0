"""Database threads shared fairly between accounts, and a time budget on each request's reads.

The API's reads run on a few threads, each holding a connection. A plain thread pool serves work in
arrival order, so one account that sends a burst of slow reads would hold every thread, and every
other account would wait behind it. :class:`FairPool` keeps one queue per owner (the account the
request is for, set by the API's guard through :data:`owner`) and hands a free thread to the owners
in turn; no owner runs on more than half the threads at once. A unit of work carries a
:class:`Deadline`: one still queued when its deadline passes is dropped unrun, and the stores cancel
one that runs past it (:class:`ReadTimeout`, a 503 with ``Retry-After``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from contextvars import ContextVar
from typing import Any, TypeVar

from patron.store import ReadTimeout

T = TypeVar("T")

#: Whose request the running task serves (an account id), so that its reads queue as that account's.
owner: ContextVar[Hashable | None] = ContextVar("patron_store_owner", default=None)


class Deadline:
    """The moment a unit of work must be done by (none: it may take as long as it takes)."""

    def __init__(self, budget: float | None) -> None:
        self.budget = budget
        self.at = None if budget is None else time.monotonic() + budget

    def left(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def expired(self) -> ReadTimeout:
        return ReadTimeout(self.budget or 0.0)


class _Job:
    __slots__ = ("deadline", "fn", "future", "owner")

    def __init__(self, owner: Hashable | None, fn: Callable[[], Any], deadline: Deadline) -> None:
        self.owner, self.fn, self.deadline = owner, fn, deadline
        self.future: Future[Any] = Future()


class FairPool:
    """``threads`` threads that serve their owners' queues in turn (round robin), each owner on at
    most ``per_owner`` threads at once (default: half of them, at least one)."""

    def __init__(self, threads: int, name: str, per_owner: int | None = None) -> None:
        self.per_owner = per_owner or max(1, threads // 2)
        self._queues: dict[Hashable | None, deque[_Job]] = {}
        self._turns: deque[Hashable | None] = deque()  # owners with queued work, in turn order
        self._running: dict[Hashable | None, int] = {}
        self._lock = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True) for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[], T], *, deadline: Deadline, who: Hashable | None = None) -> Future[T]:
        job = _Job(who, fn, deadline)
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is closed")
            queue = self._queues.get(who)
            if queue is None:
                queue = self._queues[who] = deque()
                self._turns.append(who)
            queue.append(job)
            self._lock.notify()
        return job.future

    def _next(self) -> _Job | None:
        """The next job, taken from the first owner in turn that may run one more (under the lock)."""
        for _ in range(len(self._turns)):
            who = self._turns.popleft()
            queue = self._queues[who]
            if self._running.get(who, 0) >= self.per_owner:
                self._turns.append(who)
                continue
            job = queue.popleft()
            if queue:
                self._turns.append(who)  # to the back: the others go first
            else:
                del self._queues[who]
            self._running[who] = self._running.get(who, 0) + 1
            return job
        return None

    def _serve(self) -> None:
        while True:
            with self._lock:
                job = self._next()
                while job is None:
                    if self._closed and not self._queues:
                        return
                    self._lock.wait()
                    job = self._next()
            try:
                if not job.future.set_running_or_notify_cancel():
                    continue
                if job.deadline.passed():
                    job.future.set_exception(job.deadline.expired())
                    continue
                try:
                    job.future.set_result(job.fn())
                except BaseException as exc:
                    job.future.set_exception(exc)
            finally:
                with self._lock:
                    self._running[job.owner] -= 1
                    if not self._running[job.owner]:
                        del self._running[job.owner]
                    self._lock.notify_all()

    def shutdown(self) -> None:
        """Run what is queued, then stop the threads."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join()
