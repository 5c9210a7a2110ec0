"""When the next request may leave: the server's announced rate, its backlog, and retries.

No I/O here: the sync and async clients ask these objects how long to wait, and sleep their own way.
"""

from __future__ import annotations

import math
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
#: when they arrive, and arrivals jitter (a few milliseconds of the server's own work, or a new
#: connection's handshake). It doubles after each 429, up to ``MOST_MARGIN``.
MARGIN: Final = 0.01
MOST_MARGIN: Final = 0.05
#: Below this share of the backlog left (``X-QueueSize-Remaining``), requests slow down in proportion.
LOW_BACKLOG: Final = 0.2
#: The slowest a full backlog makes requests: one every this many seconds.
SLOWEST: Final = 2.0
#: Until the first answer (which tells the rate), a second request asks again this often.
PROBE: Final = 0.01


class Pacer:
    """The pace of one class of requests (pushes, or reads): requests leave ``interval`` seconds
    apart (further apart while the account's backlog is nearly full), none before a 429's
    ``Retry-After`` has passed, and only one before the first answer has told the rate."""

    def __init__(self, rate: float | None = None) -> None:
        """``rate``: requests per second to keep to when the server announces none (None: as fast as
        the server answers, slowing down only when it answers 429)."""
        self._fixed = rate is not None
        self.interval = 1 / rate if rate else 0.0
        self.margin = MARGIN
        self.announced = False
        self._policy = (0, 0)  # the announced q requests per w seconds
        self._backlog = 1.0  # the share of the backlog left
        self._last = -math.inf  # when the latest request left (or the first answer came)
        self._held = 0.0  # no request before this (a 429's Retry-After)
        self._answered = False

    def _spacing(self) -> float:
        if self._backlog >= LOW_BACKLOG:
            return self.interval
        pressure = 1 - self._backlog / LOW_BACKLOG  # 0 at the threshold, 1 when full
        return max(self.interval, pressure * SLOWEST)

    def slot(self) -> float:
        """0 when a request may leave now (it takes the slot); else the seconds to wait before asking
        again (several waiting requests ask in turn, the first to ask when it is time leaves)."""
        now = time.monotonic()
        if not self._answered and self._last > -math.inf:
            return PROBE
        start = max(self._last + self._spacing(), self._held)
        if start > now:
            return start - now
        self._last = now
        return 0.0

    def lost(self) -> None:
        """A request got no answer (its connection failed): before the first answer, the next may go
        (the one lost, retried)."""
        if not self._answered:
            self._last = -math.inf

    def learn(self, headers: Mapping[str, str]) -> None:
        """What an answer says: the rate allowed (``RateLimit-Policy``), the backlog left
        (``X-QueueSize-Remaining`` of ``X-QueueSize-Limit``). The first answer also spaces the next
        request from its arrival: the first request's connection was opened on the way, so the server
        may have counted it late."""
        if not self._answered:
            self._answered = True
            self._last = max(self._last, time.monotonic())
        policy = _POLICY.match(headers.get("ratelimit-policy", ""))
        if policy and not self._fixed and int(policy["q"]) > 0:
            self._policy = (int(policy["q"]), int(policy["w"]))
            self._announce()
        remaining, limit = headers.get("x-queuesize-remaining"), headers.get("x-queuesize-limit")
        if remaining is not None and remaining.isdigit():
            total = int(limit) if limit and limit.isdigit() and int(limit) >= int(remaining) else 50_000
            self._backlog = int(remaining) / total if total else 1.0

    def _announce(self) -> None:
        q, w = self._policy
        self.interval = w / q * (1 + self.margin)
        self.announced = True

    def refused(self, wait: float) -> None:
        """A 429: nothing leaves for ``wait`` seconds, and requests leave further apart from now on
        (the margin doubles when the server announces its rate; a server that does not is asked a
        quarter more gently each time)."""
        self._held = max(self._held, time.monotonic() + wait)
        if self.announced:
            self.margin = min(MOST_MARGIN, self.margin * 2)
            self._announce()
        elif not self._fixed:
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
