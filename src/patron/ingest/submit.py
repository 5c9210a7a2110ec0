"""Submitting work to the import queue: the one way the HTTP edge queues anything (a push, a merge, an
anonymisation, what people do through email links, a tracking beacon).

A submission runs on the store's writer (durable when it returns), then wakes the worker. Whether a
full backlog refuses it is the caller's to say, once, as the queue limit handed to the work: the
account's limit (a push, a merge, an anonymisation: :class:`Backlogged`, a 429, and nothing stored),
or None, never refused (a beacon, bounded by the collector's own limits; a click, an unsubscribe or
a preference saved through an email's link, which is always recorded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from sqlalchemy import Connection

from patron.errors import RETRY_AFTER, TooMany
from patron.ingest.queue import BacklogFull
from patron.store import Store

T = TypeVar("T")
#: Work that queues: a function of the connection and of the queue limit it must keep under (None:
#: no limit), run in one transaction.
Queueing = Callable[[Connection, int | None], T]
#: What a refused submission stored.
NOTHING_STORED = "nothing was stored"


class Backlogged(TooMany):
    """The account's import queue has no room for the work (``queue.BacklogFull``, as the edge
    answers it): ``queued`` records wait, ``limit`` may. Nothing was stored."""

    def __init__(
        self,
        queued: int,
        limit: int,
        *,
        refused: str = NOTHING_STORED,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            f"the account has {queued:,} records queued and may queue {limit:,}; {refused}",
            retry_after=RETRY_AFTER,
            headers=headers,
        )
        self.queued = queued
        self.limit = limit


class Submitter:
    """Runs queueing work through the store's writer and wakes the worker (``wake``: the worker
    process's waker; a no-op where workers are woken otherwise)."""

    def __init__(self, store: Store, wake: Callable[[], None]) -> None:
        self.store = store
        self.wake = wake

    async def queue(self, work: Queueing[T], *, limit: int | None) -> T:
        """Run ``work`` with ``limit`` (an account's queue limit, or None: never refused for a
        backlog) and wake the worker once it is committed; :class:`Backlogged` when the work does
        not fit under ``limit`` (and nothing is stored)."""
        try:
            done: T = await self.store.write(lambda conn: work(conn, limit))
        except BacklogFull as exc:
            raise Backlogged(exc.queued, exc.limit) from exc
        self.wake()
        return done
