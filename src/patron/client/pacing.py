"""When the next request may leave: the server's announced rate, its backlog, and retries.

No I/O here: the sync and async clients ask these objects how long to wait, and sleep their own way.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final

#: ``RateLimit-Policy: "push";q=8;w=1`` (the IETF draft Patron answers with): q requests per w seconds.
_POLICY = re.compile(r'^\s*"?(?P<name>[^";]*)"?\s*;.*?\bq=(?P<q>\d+).*?\bw=(?P<w>\d+)')
#: Requests leave this much further apart than the announced rate allows: the server counts them
#: when they arrive, and arrivals jitter.
MARGIN: Final = 0.01
#: Below this share of the backlog left (``X-QueueSize-Remaining``), requests slow down in proportion.
LOW_BACKLOG: Final = 0.2
#: The slowest a full backlog makes requests: one every this many seconds.
SLOWEST: Final = 2.0


class Pacer:
    """The pace of one class of requests (pushes, or reads): a slot per request, ``interval``
    seconds apart, further apart while the account's backlog is nearly full, and none before a
    429's ``Retry-After`` has passed. Slots taken before the server announced its rate count against
    it once it does."""

    def __init__(self, rate: float | None = None) -> None:
        """``rate``: requests per second to keep to when the server announces none (None: as fast as
        the server answers, slowing down only when it answers 429)."""
        self._fixed = rate is not None
        self.interval = 1 / rate if rate else 0.0
        self.announced = False
        self._backlog = 1.0  # the share of the backlog left
        self._next = 0.0
        self._unpaced = 0  # slots taken before any rate was known

    def _spacing(self) -> float:
        if self._backlog >= LOW_BACKLOG:
            return self.interval
        pressure = 1 - self._backlog / LOW_BACKLOG  # 0 at the threshold, 1 when full
        return max(self.interval, pressure * SLOWEST)

    def slot(self) -> float:
        """Take the next slot: the seconds to wait before sending."""
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + self._spacing()
        self._unpaced += not self.interval
        return start - now

    def learn(self, headers: Mapping[str, str]) -> None:
        """What a response says: the rate allowed (``RateLimit-Policy``), the backlog left
        (``X-QueueSize-Remaining`` of ``X-QueueSize-Limit``)."""
        policy = _POLICY.match(headers.get("ratelimit-policy", ""))
        if policy and not self._fixed and int(policy["q"]) > 0:
            self.interval = int(policy["w"]) / int(policy["q"]) * (1 + MARGIN)
            if not self.announced:  # those sent before it was known count (the window holds q at most)
                counted = min(self._unpaced, int(policy["q"]))
                self._next = max(self._next, time.monotonic() + counted * self.interval)
            self.announced = True
        remaining, limit = headers.get("x-queuesize-remaining"), headers.get("x-queuesize-limit")
        if remaining is not None and remaining.isdigit():
            total = int(limit) if limit and limit.isdigit() and int(limit) >= int(remaining) else 50_000
            self._backlog = int(remaining) / total if total else 1.0

    def refused(self, wait: float) -> None:
        """A 429: nothing leaves for ``wait`` seconds; a server that announces no rate is asked more
        gently from now on."""
        self._next = max(self._next, time.monotonic() + wait)
        if not self.announced and not self._fixed:
            self.interval = max(self.interval * 1.25, 0.05)


def retry_after(headers: Mapping[str, str], default: float = 1.0) -> float:
    """A 429's or 503's ``Retry-After`` in seconds (seconds or an HTTP date), else ``default``."""
    value = headers.get("retry-after")
    if not value:
        return default
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


@dataclass
class Retries:
    """How long to keep trying one request through 429s, 5xx and failed connections: ``give_up_after``
    seconds from its first failure; between attempts an exponential backoff with full jitter
    (``base`` doubling up to ``cap``), or a ``Retry-After`` when the server gives one."""

    give_up_after: float = 600.0
    base: float = 0.5
    cap: float = 30.0

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2**attempt))  # noqa: S311 (jitter, not secrecy)


RETRIED_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
