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

#: The endpoint classes and Ometria's documented default limit for each.
DEFAULT_LIMITS: Final[dict[str, str]] = {
    "data": "4/second",
    "push": "8/second",
    "email": "30/second",
    "gdpr": "6/minute",
    "merge": "1/minute",
}
UNLIMITED: Final = "unlimited"


class InvalidLimit(ValueError):
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


class RateLimiter:
    """Checks and counts one request of an account against the limit of an endpoint class."""

    def __init__(self, storage_url: str | None = None) -> None:
        """Counters in this process's memory, or in the Redis at ``storage_url`` (``redis://host:6379``),
        shared by every process that uses it."""
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
        allowed = await self._limiter.hit(item, account_hash, endpoint_class)
        stats = await self._limiter.get_window_stats(item, account_hash, endpoint_class)
        reset_after = max(1, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, item.amount, stats.remaining, reset_after)
