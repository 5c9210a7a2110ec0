"""Per-account rate limits by endpoint class, counted in requests (as Ometria counts them).

The counters live in the ``limits`` library's storage: in memory for one process, in Redis when
``PATRON_REDIS_URL`` is set so that every process shares them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Final, cast

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from sqlalchemy import Connection, delete, select

from patron.errors import Invalid
from patron.store import Store, upsert
from patron.store.schema import rate_windows

#: The endpoint classes and Ometria's documented default limit for each.
DEFAULT_LIMITS: Final[dict[str, str]] = {
    "data": "4/second",
    "push": "8/second",
    "email": "30/second",
    "gdpr": "6/minute",
    "merge": "1/minute",
}
UNLIMITED: Final = "unlimited"


class InvalidLimit(Invalid):
    """A limit that is not ``N/second``, ``N/minute``, ``N/hour``, ``N/day`` or ``unlimited``."""


def validate(endpoint_class: str, value: str) -> str:
    """The canonical form of ``value`` as a limit for ``endpoint_class``; raises :class:`InvalidLimit`."""
    if endpoint_class not in DEFAULT_LIMITS:
        raise InvalidLimit(f"unknown endpoint class {endpoint_class!r}; known: {', '.join(DEFAULT_LIMITS)}")
    value = value.strip().lower()
    if value == UNLIMITED:
        return value
    try:
        item = parse(value)
    except ValueError as exc:
        raise InvalidLimit(f"{value!r} is not a rate such as 8/second or 6/minute") from exc
    if item.amount < 1:
        raise InvalidLimit(f"{value!r} allows no request at all")
    per = item.GRANULARITY.name if item.multiples == 1 else f"{item.multiples} {item.GRANULARITY.name}s"
    return f"{item.amount}/{per}"


def effective(overrides: dict[str, str]) -> dict[str, str]:
    """The account's limit for every class: its overrides over the defaults."""
    return {name: overrides.get(name, default) for name, default in DEFAULT_LIMITS.items()}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # whole seconds until the window frees a request
    window: int = 0  # the window's length in seconds (0: no limit)


def _count_in_window(conn: Connection, key: str, window_start: int, limit: int) -> int | None:
    """Count one request in the window, unless it already holds ``limit``; the new count, or None."""
    if limit < 1:
        return None
    insert = upsert(conn, rate_windows).values(key=key, window_start=window_start, count=1)
    counted = conn.execute(
        insert.on_conflict_do_update(
            index_elements=["key", "window_start"],
            set_={"count": rate_windows.c.count + 1},
            where=rate_windows.c.count < limit,
        ).returning(rate_windows.c.count)
    ).scalar_one_or_none()
    if counted == 1:  # a new window: forget the key's windows of more than a day ago
        old = (rate_windows.c.key == key) & (rate_windows.c.window_start < window_start - 86_400)
        conn.execute(delete(rate_windows).where(old))
    return None if counted is None else int(counted)


class RateLimiter:
    """Checks and counts one request of an account against the limit of an endpoint class."""

    def __init__(self, storage_url: str | None = None, store: Store | None = None) -> None:
        """Counters in this process's memory; or in the Redis at ``storage_url``
        (``redis://host:6379``), or in ``store``'s database, shared by every process
        that uses it. The database counts in sliding windows (two fixed windows, the older one
        weighted); memory and Redis in moving windows."""
        self._store = store
        storage = (
            MemoryStorage()
            if storage_url is None
            else cast(Storage, storage_from_string(f"async+{storage_url}", implementation="redispy"))
        )
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._parsed: dict[str, RateLimitItem] = {}

    def _item(self, value: str) -> RateLimitItem:
        item = self._parsed.get(value)
        if item is None:
            item = self._parsed[value] = parse(value)
        return item

    async def close(self) -> None:
        """Close the connection to Redis, if any (``limits`` offers no public way: its client is
        reached through the storage's bridge)."""
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()

    async def hit(self, account_hash: str, endpoint_class: str, value: str) -> Decision:
        """Count one request; ``allowed`` is False (and nothing is counted) when over the limit."""
        if value == UNLIMITED:
            return Decision(True, 0, 0, 0)
        item = self._item(value)
        if self._store is not None:
            return await self._hit_in_store(item, f"{account_hash}/{endpoint_class}/{value}")
        allowed = await self._limiter.hit(item, account_hash, endpoint_class)
        stats = await self._limiter.get_window_stats(item, account_hash, endpoint_class)
        reset_after = max(1, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, item.amount, stats.remaining, reset_after, item.get_expiry())

    async def _hit_in_store(self, item: RateLimitItem, key: str) -> Decision:
        """A sliding window counter: the previous window's count, weighted by how much of it still
        lies within one window of now, leaves that much less room in the current window (so that a
        burst across a window's boundary cannot pass twice the limit), rounded down (so that a client
        keeping to the limit, its requests evenly spaced, is never refused)."""
        assert self._store is not None
        now = time.time()
        window = item.get_expiry()
        start = int(now // window * window)

        def count(conn: Connection) -> int | None:
            previous = conn.execute(
                select(rate_windows.c.count).where(
                    rate_windows.c.key == key, rate_windows.c.window_start == start - window
                )
            ).scalar_one_or_none()
            carried = math.floor((previous or 0) * (1 - (now - start) / window))
            return _count_in_window(conn, key, start, item.amount - carried)

        counted = await self._store.write(count)
        reset_after = max(1, math.ceil(start + window - now))
        if counted is None:
            return Decision(False, item.amount, 0, reset_after, window)
        return Decision(True, item.amount, max(0, item.amount - counted), reset_after, window)
