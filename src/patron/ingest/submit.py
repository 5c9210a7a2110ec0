"""Submitting work to the import queue: the one way the HTTP edge queues anything (a push, a merge, an
anonymisation, what people do through email links, a tracking beacon).

A submission runs on the store's writer (durable when it returns), then wakes the worker. Whether a
full backlog refuses it is the caller's to say, once, as the queue limit handed to the work: the
account's limit (a push, a merge, an anonymisation: ``queue.BacklogFull``, a 429, and nothing stored),
or None, never refused (a beacon, bounded by the collector's own limits; a click, an unsubscribe or
a preference saved through an email's link, which is always recorded).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection

from patron.store import Store

T = TypeVar("T")
#: Work that queues: a function of the connection and of the queue limit it must keep under (None:
#: no limit), run in one transaction.
Queueing = Callable[[Connection, int | None], T]


class Submitter:
    """Runs queueing work through the store's writer and wakes the worker (``wake``: the worker
    process's waker; a no-op where workers are woken otherwise)."""

    def __init__(self, store: Store, wake: Callable[[], None]) -> None:
        self.store = store
        self.wake = wake

    async def queue(self, work: Queueing[T], *, limit: int | None) -> T:
        """Run ``work`` with ``limit`` (an account's queue limit, or None: never refused for a
        backlog) and wake the worker once it is committed; ``queue.BacklogFull`` (a 429) when the
        work does not fit under ``limit``, and nothing is stored."""
        done: T = await self.store.write(lambda conn: work(conn, limit))
        self.wake()
        return done
